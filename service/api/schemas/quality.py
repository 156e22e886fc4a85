"""Task quality: the certified bound, realised audit error, coverage and reviews spent."""

from __future__ import annotations

from pydantic import BaseModel, Field


class QualityPublic(BaseModel):
    epsilon: float = Field(description="Target error of accepted machine labels.")
    delta: float = Field(description="The bound holds with confidence 1 - delta.")
    threshold: float | None = Field(description="Lowest calibrated confidence accepted; null in cold start.")
    error_bound: float | None = Field(description="Certified upper bound on accepted-label error; null in cold start.")
    audit_reviews: int = Field(description="Accepted items drawn at random for review and reviewed.")
    audit_errors: int
    audit_error: float | None = Field(description="Realised error among reviewed audit samples.")
    audit_error_upper: float | None = Field(description="Clopper-Pearson upper bound (level 1 - delta) on it.")
    accepted: int
    total: int = Field(description="Items routed so far (scored, accepted or sent to review).")
    coverage: float = Field(description="Share of routed items whose machine label was accepted.")
    human_reviews: int
    certified_on: int = Field(description="Uniform human reviews the threshold was certified on.")

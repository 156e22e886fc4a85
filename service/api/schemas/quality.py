"""Task quality: the certified bound, realised audit error, coverage and reviews spent."""

from __future__ import annotations

from pydantic import BaseModel, Field


class LabelerPublic(BaseModel):
    look: int = Field(description="The look that certified it (0 is the first).")
    sources: list[str] = Field(description="What it combines: teacher, probe (on the embeddings), student.")
    weights: list[float] = Field(description="The weight of each source's log-probabilities.")
    description: str


class QualityPublic(BaseModel):
    epsilon: float = Field(description="Target error of accepted machine labels.")
    delta: float = Field(description="The bound holds with confidence 1 - delta.")
    threshold: float | None = Field(description="Lowest calibrated confidence accepted; null in cold start.")
    error_bound: float | None = Field(description="Certified upper bound on accepted-label error; null in cold start.")
    audit_reviews: int = Field(
        description="Accepted items drawn at random for review and reviewed (a spans task: the tagger's)."
    )
    audit_errors: int
    audit_error: float | None = Field(description="Realised error among reviewed audit samples.")
    audit_error_upper: float | None = Field(description="Clopper-Pearson upper bound (level 1 - delta) on it.")
    accepted: int
    total: int = Field(description="Items routed so far (scored, accepted or sent to review).")
    coverage: float = Field(description="Share of routed items whose machine label was accepted.")
    human_reviews: int
    certified_on: int = Field(
        description="Fresh uniform reviews (labeled after the labeler was fitted) the threshold was certified on; "
        "for a spans task, the promoted tagger's held-out gold items."
    )
    labeler: LabelerPublic | None = Field(description="The certified labeler that accepts items; null in cold start.")
    looks: int = Field(
        description="Looks so far: each tests a labeler fitted earlier on the uniform reviews labeled after it."
    )
    review_budget: int | None = Field(description="Human reviews the task may spend; null for no limit.")
    reviews_left: int | None
    target_coverage: float | None = Field(description="The coverage the task aims for; null for none.")
    expected_reviews_to_target: int | None = Field(
        description="More uniform reviews the newest labeler's look is expected to need to certify a threshold "
        "that reaches the target coverage (0 when the reviews in hand should suffice), judged from its "
        "cross-fitted probabilities; null without a target or a labeler, or when the target is out of its reach."
    )

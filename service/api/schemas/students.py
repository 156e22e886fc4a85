"""Students: training jobs, versions with their gold metrics, promotion."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from service.api.schemas.common import LabelValue, Strict


class StudentCreate(Strict):
    seed: int = 0
    epochs: int = Field(10, ge=1, le=100)


class StudentJobPublic(BaseModel):
    job_id: int
    job_url: str


class StudentPublic(BaseModel):
    version: str
    path: str
    promoted: bool
    metrics: dict[str, Any]


class PromotionCreate(Strict):
    force: bool = Field(False, description="Admin override: promote even when the gate fails.")


MAX_PREDICT_TEXTS = 1000


class PredictCreate(Strict):
    texts: list[str] = Field(min_length=1, max_length=MAX_PREDICT_TEXTS)


class PredictionPublic(BaseModel):
    label: LabelValue
    """The label, or a multi-label task's list of labels."""
    confidence: float
    """The probability that the label (the whole list) is right."""
    probs: dict[str, float]
    """Per label, the probability that it is right, or for a multi-label task that it applies (none for spans: the
    confidence is the whole span set's)."""
    above_threshold: bool = Field(
        description="Whether the confidence reaches the student's certified threshold, the rule the task applies to "
        "its labels (before the neighbour and out-of-distribution vetoes, which need the task's labeled pool)."
    )


class PredictPublic(BaseModel):
    student: str
    """The promoted student version that answered."""
    threshold: float | None
    """Its certified threshold; None when none was certified (then nothing is above it)."""
    predictions: list[PredictionPublic]

"""The review API: leased items, votes, progress, agreement, assignments and adjudication."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from service.api.schemas.common import LabelValue, Strict
from service.pipeline.reviewer_model import DEFAULT_AGGREGATE_AT


class ReviewItemPublic(BaseModel):
    item_id: int
    external_id: str
    task: str
    text: str
    truncated: bool
    blind: bool = Field(
        description="A uniform draw (cold start or audit): no suggestion, confidence or probabilities are shown."
    )
    suggestion: LabelValue | None
    confidence: float | None = Field(description="The probability that the suggestion (the whole set) is right.")
    probs: dict[str, float] = Field(
        description="Per label, the probability that it is right (multi_label: that it applies to the text)."
    )
    span_confidences: list[float] | None = Field(
        None,
        description="spans: each suggested span's probability, in the suggestion's order, where the teacher "
        "gave them (the student gives only the set's).",
    )
    reasons: list[str]
    priority: float
    priority_explanation: str
    lease_expires: datetime


class VoteCreate(Strict):
    label: LabelValue


class ReviewLeasePublic(ReviewItemPublic):
    kind: Literal["review", "audit", "gold"] = Field(description="audit and gold items may need several reviewers.")
    votes: int = Field(description="Answers the item has so far (not counting yours).")
    required: int = Field(description="Answers it needs before it is final.")


class VotePublic(BaseModel):
    item_id: int
    label: LabelValue
    source: Literal["human"] = "human"
    status: Literal["final", "waiting", "adjudication"] = Field(
        description="final: the label is stored; waiting: more reviewers must answer; adjudication: they disagreed, "
        "or the answer contradicts a machine label the policy would have accepted (the label is stored and counts "
        "as an audit), and a lead gives the final label."
    )
    votes: int
    required: int
    next_item: ReviewLeasePublic | None = Field(
        None, description="With ?next=true: the reviewer's next item, leased in the same request (None when empty)."
    )


class TaskCounts(BaseModel):
    items: int
    waiting: int
    adjudication: int
    counts: dict[str, int]


class ProgressPublic(BaseModel):
    reviewer: str
    reviewed: int
    task: TaskCounts


class ReviewSettingsUpdate(Strict):
    audit_reviewers: int = Field(1, ge=1, le=10)
    gold_reviewers: int = Field(1, ge=1, le=10)
    second_review_below: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="An item answered by a reviewer whose estimated accuracy (the reviewer model) is below this "
        "waits for a second reviewer; null: one answer settles a review item.",
    )
    aggregate_at: float | None = Field(
        DEFAULT_AGGREGATE_AT,
        gt=0.5,
        le=1.0,
        description="Answers that disagree are settled by their weighted aggregate (each answer weighed by its "
        "reviewer's estimated confusion matrix) when it is at least this probable; below it, or when null, they go "
        "to a lead for adjudication.",
    )


class ReviewSettingsPublic(ReviewSettingsUpdate):
    """The task's review settings as stored."""


class ReviewTaskPublic(BaseModel):
    name: str
    waiting: int


class AssignmentPublic(BaseModel):
    task: str
    reviewer: str
    assigned_by: str
    created_at: datetime


class PairPublic(BaseModel):
    first: str
    second: str
    items: int
    kappa: float | None
    observed: float | None
    span_f1: float | None = Field(
        None, description="spans: the mean span-level F1 of one reviewer's span set against the other's."
    )


class AccuracyPublic(BaseModel):
    items: int
    correct: int
    accuracy: float | None


class ReviewerQualityPublic(BaseModel):
    reviewer: str
    votes: int
    gold: AccuracyPublic | None
    audit: AccuracyPublic | None
    estimated_accuracy: float | None = Field(
        description="The reviewer model's estimate (Dawid-Skene with a prior, fitted on gold items and items answered "
        "more than once); null when none of their answers is on such an item."
    )
    evidence: int = Field(description="Their answers on gold or multiply answered items: what the estimate rests on.")


class LabelAgreementPublic(BaseModel):
    krippendorff_alpha: float | None
    pairs: list[PairPublic]


class AgreementPublic(BaseModel):
    task: str
    items_with_several_votes: int
    krippendorff_alpha: float | None = Field(description="Over whole answers: a multi_label task's exact sets.")
    pairs: list[PairPublic] = Field(
        description="Cohen's kappa for each pair of reviewers with shared items; observed is the share of exact "
        "agreement (a multi_label task's: the same set)."
    )
    per_label: dict[str, LabelAgreementPublic] | None = Field(
        None, description="multi_label: agreement on each label alone (whether it applies)."
    )
    reviewers: list[ReviewerQualityPublic]


class DisputedPublic(BaseModel):
    item_id: int
    external_id: str
    text: str
    votes: dict[str, LabelValue]
    priority: float
    reason: Literal["disagreement", "audit_contradiction", "inconsistency"] = Field(
        description="disagreement: the reviewers' answers differ; audit_contradiction: an audit answer (stored, "
        "and counted as the audit's result) contradicts a machine label the policy would have accepted; "
        "inconsistency: a near-identical item has another final label (sent by a lead from a consistency check)."
    )
    explanation: str
    machine: LabelValue | None = Field(description="The machine's label, if it gave one.")


class AdjudicationCreate(Strict):
    label: LabelValue


class WhoAmIPublic(BaseModel):
    name: str
    role: str

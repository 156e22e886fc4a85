"""Read models over the append-only history: reviewed items for fitting the policy, labeled items for kNN."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.tables import DecisionRecord, Item, Label, Prediction

UNBIASED_REASONS = frozenset({"cold_start", "audit_sample"})
"""Reviews drawn uniformly at random; only these may certify a threshold (see pipeline.policy.fit_policy)."""


def drawn_at_random(reasons: Iterable[object]) -> bool:
    """Whether a decision with these reasons sent its item to review by a uniform random draw."""
    return bool({str(reason) for reason in reasons} & UNBIASED_REASONS)


VETO_REASONS = frozenset(
    {"ensemble_disagreement", "neighbour_disagreement", "student_disagreement", "out_of_distribution"}
)


def in_current_regime(signals: list[dict[str, object]]) -> list[bool]:
    """Which predictions belong to the prompts the teacher uses now: once any reviewed prediction had few-shot
    examples, those made zero-shot (the first chunk, before anything was labeled) are left out of calibration.
    Their label bias differs from the few-shot prompts' (SmolLM2 on SMS: raw accuracy 0.22 zero-shot, 0.85 to
    0.98 few-shot), and fitted together they pulled calibrated accuracy of few-shot scores from 0.98 to 0.88.
    Certification keeps them: a worse regime among the uniform reviews only makes the bound more cautious."""
    shots = [s.get("shots") for s in signals]
    few_shot_seen = any(isinstance(n, int) and n > 0 for n in shots)
    return [not (few_shot_seen and n == 0) for n in shots]


@dataclass(frozen=True)
class ReviewedOutcome:
    confidence: float
    correct: bool
    vetoed: bool
    audit: bool
    sampled_above: float
    """The threshold in force when the item was drawn for review (0 for cold-start draws)."""
    source: str


def reviewed_outcomes(session: Session, *, task_id: int, source: str = "teacher") -> list[ReviewedOutcome]:
    """Machine predictions of `source` on items a human reviewed after a uniform random draw, with whether the
    machine was right. The latest human label of an item is the truth."""
    humans: dict[int, str] = {}
    for label in session.scalars(
        select(Label).where(Label.task_id == task_id, Label.source == "human").order_by(Label.id)
    ):
        humans[label.item_id] = label.label
    if not humans:
        return []
    rows = session.execute(
        select(DecisionRecord, Prediction)
        .join(Prediction, Prediction.id == DecisionRecord.prediction_id)
        .join(Item, Item.id == DecisionRecord.item_id)
        .where(Item.task_id == task_id, Item.state == "resolved", Prediction.source == source)
        .order_by(DecisionRecord.id)
    ).all()
    outcomes: dict[int, ReviewedOutcome] = {}
    for decision, prediction in rows:
        reasons = set(decision.reason_names)
        if decision.item_id in humans and drawn_at_random(reasons):
            outcomes[decision.item_id] = ReviewedOutcome(
                confidence=prediction.confidence,
                correct=prediction.label == humans[decision.item_id],
                vetoed=bool(reasons & VETO_REASONS),
                audit="audit_sample" in reasons,
                sampled_above=float(decision.signals.get("sampled_above", 0.0)),
                source=prediction.source,
            )
    return list(outcomes.values())


def calibration_data(
    session: Session, *, task_id: int, labels: tuple[str, ...], limit: int = 2000
) -> tuple[list[list[float]], list[int]]:
    """Raw teacher distributions of the most recent items a human reviewed after a uniform random draw (cold start
    or audit) and the human label's index, for fitting the task's calibration. Items reviewed because they looked
    wrong are left out: fitted on them, a calibration learns that sample's errors (on 20 items the teacher had
    wrong, it labeled everything else as one label, accuracy 0.5)."""
    humans: dict[int, str] = {}
    for label in session.scalars(
        select(Label).where(Label.task_id == task_id, Label.source == "human").order_by(Label.id.desc()).limit(limit)
    ):
        humans.setdefault(label.item_id, label.label)
    rows = session.execute(
        select(Prediction, DecisionRecord.signals, DecisionRecord.reasons)
        .join(DecisionRecord, DecisionRecord.prediction_id == Prediction.id)
        .where(Prediction.item_id.in_(list(humans)), Prediction.source == "teacher")
        .order_by(Prediction.id)
    ).all()
    raw: dict[int, list[float]] = {}
    regimes = in_current_regime([signals for _, signals, _ in rows])
    for (prediction, _, reasons), current in zip(rows, regimes, strict=True):
        if current and drawn_at_random(reasons):
            raw[prediction.item_id] = [float(p) for p in prediction.raw_probs]
    index = {name: i for i, name in enumerate(labels)}
    keep = [item for item in raw if humans[item] in index and len(raw[item]) == len(labels)]
    return [raw[item] for item in keep], [index[humans[item]] for item in keep]


@dataclass(frozen=True)
class LabeledRow:
    label_id: int
    item_id: int
    text: str
    label: str
    source: str
    embedding: np.ndarray | None


def labels_since(session: Session, *, task_id: int, after_label_id: int) -> list[LabeledRow]:
    """Label rows newer than `after_label_id` with their item's text and embedding, oldest first."""
    rows = session.execute(
        select(Label, Item.text, Item.embedding)
        .join(Item, Item.id == Label.item_id)
        .where(Label.task_id == task_id, Label.id > after_label_id)
        .order_by(Label.id)
    ).all()
    return [
        LabeledRow(
            label_id=label.id,
            item_id=label.item_id,
            text=text,
            label=label.label,
            source=label.source,
            embedding=np.frombuffer(embedding, dtype=np.float32) if embedding is not None else None,
        )
        for label, text, embedding in rows
    ]


@dataclass(frozen=True)
class TrainingRow:
    item_id: int
    text: str
    label: str
    source: str
    teacher_probs: tuple[float, ...] | None
    teacher_label: str | None
    template_sha: str | None


def training_rows(session: Session, *, task_id: int) -> list[TrainingRow]:
    """Every item with a final label, with the teacher's latest prediction on it (for soft targets and for
    comparing the student with the teacher on the same gold items)."""
    final: dict[int, Label] = {}
    for label in session.scalars(select(Label).where(Label.task_id == task_id).order_by(Label.id)):
        final[label.item_id] = label
    teacher: dict[int, Prediction] = {}
    for prediction in session.scalars(
        select(Prediction)
        .join(Item, Item.id == Prediction.item_id)
        .where(Item.task_id == task_id, Prediction.source == "teacher")
        .order_by(Prediction.id)
    ):
        teacher[prediction.item_id] = prediction
    texts = dict(session.execute(select(Item.id, Item.text).where(Item.id.in_(list(final)))).all())
    return [
        TrainingRow(
            item_id=item_id,
            text=texts[item_id],
            label=label.label,
            source=label.source,
            teacher_probs=tuple(float(p) for p in teacher[item_id].probs) if item_id in teacher else None,
            teacher_label=teacher[item_id].label if item_id in teacher else None,
            template_sha=teacher[item_id].template_sha if item_id in teacher else None,
        )
        for item_id, label in sorted(final.items())
    ]

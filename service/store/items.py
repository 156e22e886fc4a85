"""Items of a batch on their way through the loop: the next queued ones, counts by state, the latest history rows
of each, and the outcome of scoring one (prediction, routing decision, then a label or a place in the review queue).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict, TypeVar

import numpy as np
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from service.pipeline.route import Decision
from service.ports import FloatArray
from service.store import review
from service.tables import DecisionRecord, Item, Label, Prediction

Row = TypeVar("Row", Label, Prediction, DecisionRecord)


@dataclass(frozen=True)
class QueuedItem:
    item_id: int
    text: str


class RecordedSignals(TypedDict, total=False):
    """What is stored with a routing decision: the signals that were available (see pipeline.route.Signals) and
    what the review order and certification read back."""

    confidence: float
    margin: float
    neighbour_disagreement: float
    student_disagreement: bool
    ood_distance: float
    probe_support: float
    """The embedding probe's probability of the machine label."""
    wrong_chance: float
    """The chance the machine label is wrong, which orders the review queue."""
    shots: int
    """Few-shot examples in the teacher's prompt (absent for the student)."""
    sampled_above: float
    """The threshold in force when the item was routed (0 in cold start): audits are uniform only above it."""


@dataclass(frozen=True)
class MachineScore:
    """What a model said about one item: which model, with which prompt, and its probabilities over the labels."""

    source: str
    """teacher or student."""
    model: str
    template_sha: str
    """The prompt template's sha (empty for the student)."""
    prompt_sha: str
    raw_probs: tuple[float, ...]
    probs: tuple[float, ...]
    """Calibrated probabilities, in the task's label order."""
    truncated: bool
    """Whether the text was cut to fit the model's context."""


@dataclass(frozen=True)
class ItemOutcome:
    """One scored item: the machine's prediction, the routing decision and where the item goes next."""

    item_id: int
    embedding: FloatArray
    score: MachineScore
    label: str
    confidence: float
    decision: Decision
    signals: RecordedSignals
    priority: float
    priority_explanation: str


def next_queued(session: Session, *, batch_id: int, limit: int, at_random: bool) -> list[QueuedItem]:
    """Up to ``limit`` items of the batch still queued: in id order, or a uniform random draw."""
    query = select(Item.id, Item.text).where(Item.batch_id == batch_id, Item.state == "queued")
    ordered = query.order_by(func.random() if at_random else Item.id).limit(limit)
    return [QueuedItem(int(item_id), str(text)) for item_id, text in session.execute(ordered).all()]


def count_in_batch(session: Session, *, batch_id: int, queued: bool) -> int:
    """Items of the batch still queued (``queued``) or already routed (not ``queued``)."""
    state = Item.state == "queued" if queued else Item.state != "queued"
    return int(session.scalar(select(func.count()).select_from(Item).where(Item.batch_id == batch_id, state)) or 0)


def counts_by_state(session: Session, *, task_id: int) -> dict[str, int]:
    """Items of the task per state (states without items are absent)."""
    rows = session.execute(select(Item.state, func.count()).where(Item.task_id == task_id).group_by(Item.state))
    return {str(state): int(count) for state, count in rows.all()}


def latest_rows(session: Session, table: type[Row], ids: list[int]) -> dict[int, Row]:
    """The newest row of ``table`` (labels, predictions or decisions) for each item id that has one."""
    latest: dict[int, Row] = {}
    if ids:
        for row in session.scalars(select(table).where(table.item_id.in_(ids)).order_by(table.id)):
            latest[row.item_id] = row
    return latest


def record_outcome(session: Session, *, task_id: int, outcome: ItemOutcome) -> bool:
    """Write a scored item's history if it is still queued: False when another worker wrote it first, so a
    retried chunk labels every item exactly once."""
    claimed = session.execute(
        update(Item)
        .where(Item.id == outcome.item_id, Item.state == "queued")
        .values(
            state="accepted" if outcome.decision.accept else "review",
            embedding=np.asarray(outcome.embedding, dtype=np.float32).tobytes(),
            truncated=outcome.score.truncated,
        )
    )
    if not claimed.rowcount:  # type: ignore[attr-defined]
        return False
    score = outcome.score
    prediction = Prediction(
        item_id=outcome.item_id,
        source=score.source,
        model=score.model,
        template_sha=score.template_sha,
        prompt_sha=score.prompt_sha,
        raw_probs=list(score.raw_probs),
        probs=list(score.probs),
        label=outcome.label,
        confidence=outcome.confidence,
    )
    session.add(prediction)
    session.flush()
    session.add(
        DecisionRecord(
            item_id=outcome.item_id,
            prediction_id=prediction.id,
            accept=outcome.decision.accept,
            reasons=list(outcome.decision.reasons),
            signals=dict(outcome.signals),
        )
    )
    if outcome.decision.accept:
        session.add(
            Label(
                item_id=outcome.item_id,
                task_id=task_id,
                label=outcome.label,
                source=score.source,
                confidence=outcome.confidence,
                prediction_id=prediction.id,
            )
        )
    else:
        item = session.get_one(Item, outcome.item_id)
        review.enqueue(session, item=item, priority=outcome.priority, explanation=outcome.priority_explanation)
    return True

"""Items of a batch on their way through the loop: the next queued ones, counts by state, the latest history rows
of each, and the outcome of scoring one (prediction, routing decision, then a label or a place in the review queue).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict, TypeVar

import numpy as np
from sqlalchemy import BigInteger, ColumnElement, cast, delete, func, literal, select, true, update
from sqlalchemy.orm import Session

from service.db import id_chunks
from service.pipeline.route import Decision
from service.ports import FloatArray
from service.store import review
from service.store.history import VETO_REASONS, drawn_at_random
from service.tables import DecisionRecord, Item, Job, Label, Prediction, ReviewEntry

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
    labeler: int
    """The look whose labeler scored the item (absent before the first look, and for the student)."""
    density: float
    """How typical the item is of its chunk (review_order.density), which breaks near-ties in the review order."""
    would_accept: bool
    """For an audit sample: whether the policy would have accepted its machine label had it not been drawn. A
    reviewer who contradicts such a label sends the item to a lead (see store.review.resolve)."""
    answer_problem: str
    """Why a spans teacher's answer was not trusted (pipeline.span_answers.Proposal.problem)."""


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
    """Calibrated probabilities, in the task's label order. For a spans task: probs holds the span set's confidence,
    raw_probs each span's, in text order (pipeline.span_answers)."""
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


_SPREAD = 2654435761
"""Knuth's multiplicative hash: consecutive item ids land in different chunks, so a chunk is not a run of the
client's order, and uniform draws within chunks stay spread over the batch."""


def chunk_of(item_id: int, chunks: int) -> int:
    """The chunk job (0..chunks-1) that labels an item (the same rule as ``in_chunk``, in Python)."""
    return (item_id * _SPREAD) % 4294967296 % chunks


def in_chunk(chunk: Chunk | None) -> ColumnElement[bool]:
    """The items of one chunk job (every item for None: a job from before chunk jobs)."""
    if chunk is None or chunk.chunks == 1:
        return true()
    # 64-bit arithmetic: the product overflows PostgreSQL's 32-bit integer.
    spread = cast(Item.id, BigInteger) * literal(_SPREAD, BigInteger)
    return spread % literal(4294967296, BigInteger) % chunk.chunks == chunk.chunk


@dataclass(frozen=True)
class Chunk:
    chunk: int
    chunks: int

    @classmethod
    def of(cls, job: Job) -> Chunk | None:
        payload = job.payload or {}
        if "chunks" not in payload:
            return None
        return cls(chunk=int(payload["chunk"]), chunks=int(payload["chunks"]))


def next_queued(
    session: Session, *, batch_id: int, limit: int, at_random: bool, chunk: Chunk | None = None
) -> list[QueuedItem]:
    """Up to ``limit`` items of the batch (of one ``chunk`` of it) still queued: in id order, or a uniform random
    draw."""
    query = select(Item.id, Item.text).where(Item.batch_id == batch_id, Item.state == "queued", in_chunk(chunk))
    ordered = query.order_by(func.random() if at_random else Item.id).limit(limit)
    return [QueuedItem(int(item_id), str(text)) for item_id, text in session.execute(ordered).all()]


def count_in_batch(session: Session, *, batch_id: int, queued: bool, chunk: Chunk | None = None) -> int:
    """Items of the batch (of one ``chunk`` of it) still queued (``queued``) or already routed (not ``queued``)."""
    state = Item.state == "queued" if queued else Item.state != "queued"
    where = (Item.batch_id == batch_id, state, in_chunk(chunk))
    return int(session.scalar(select(func.count()).select_from(Item).where(*where)) or 0)


def predictions_per_item(session: Session) -> dict[int, int]:
    """How many items have 0, 1, 2... predictions (a fault benchmark's check that none was labeled twice)."""
    per_item = (
        select(Item.id, func.count(Prediction.id).label("n"))
        .outerjoin(Prediction, Prediction.item_id == Item.id)
        .group_by(Item.id)
        .subquery()
    )
    grouped = session.execute(select(per_item.c.n, func.count()).group_by(per_item.c.n)).all()
    return {int(n): int(items) for n, items in grouped}


def count_queued(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Item).where(Item.state == "queued")) or 0)


def counts_by_state(session: Session, *, task_id: int) -> dict[str, int]:
    """Items of the task per state (states without items are absent)."""
    rows = session.execute(select(Item.state, func.count()).where(Item.task_id == task_id).group_by(Item.state))
    return {str(state): int(count) for state, count in rows.all()}


def latest_rows(session: Session, table: type[Row], ids: list[int]) -> dict[int, Row]:
    """The newest row of ``table`` (labels, predictions or decisions) for each item id that has one."""
    latest: dict[int, Row] = {}
    for chunk in id_chunks(ids):
        for row in session.scalars(select(table).where(table.item_id.in_(chunk)).order_by(table.id)):
            latest[row.item_id] = row
    return latest


def unembedded_labeled(
    session: Session, *, batch_id: int, limit: int, chunk: Chunk | None = None
) -> list[tuple[int, str]]:
    """(id, text) of the batch's items (of one ``chunk`` of it) that came with a human label (resolved on import,
    never scored) and have no embedding yet."""
    rows = session.execute(
        select(Item.id, Item.text)
        .where(Item.batch_id == batch_id, Item.state == "resolved", Item.embedding.is_(None), in_chunk(chunk))
        .order_by(Item.id)
        .limit(limit)
    ).all()
    return [(item_id, text) for item_id, text in rows]


def store_embeddings(session: Session, embeddings: dict[int, FloatArray]) -> None:
    for item_id, embedding in embeddings.items():
        session.execute(
            update(Item)
            .where(Item.id == item_id, Item.embedding.is_(None))
            .values(embedding=np.asarray(embedding, dtype=np.float32).tobytes())
            .execution_options(synchronize_session=False)
        )


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
    _append_history(
        session,
        task_id=task_id,
        item_id=outcome.item_id,
        score=outcome.score,
        label=outcome.label,
        confidence=outcome.confidence,
        accept=outcome.decision.accept,
        reasons=list(outcome.decision.reasons),
        signals=dict(outcome.signals),
    )
    if not outcome.decision.accept:
        item = session.get_one(Item, outcome.item_id)
        review.enqueue(session, item=item, priority=outcome.priority, explanation=outcome.priority_explanation)
    return True


@dataclass(frozen=True)
class QueuedForReview:
    """An item waiting in the review queue because it looked doubtful (not a uniform draw), with no answer yet."""

    item_id: int
    text: str
    prediction: Prediction
    """Its latest teacher prediction: the raw scores a newer labeler recomputes from."""
    embedding: FloatArray
    vetoed: bool
    density: float | None
    """As recorded when it was routed (absent from decisions older than the signal)."""


def rescore_candidates(session: Session, *, task_id: int) -> list[QueuedForReview]:
    """Items of the task waiting for review that no reviewer holds or has answered and that were not drawn at
    random (those are the uniform sample, and must be reviewed whatever their score)."""
    waiting = session.scalars(
        select(ReviewEntry).where(ReviewEntry.task_id == task_id, *review.unclaimed_entries())
    ).all()
    ids = [entry.item_id for entry in waiting]
    predictions = latest_rows(session, Prediction, ids)
    decisions = latest_rows(session, DecisionRecord, ids)
    stored = (
        {
            row.id: (row.text, row.embedding)
            for row in session.execute(select(Item.id, Item.text, Item.embedding).where(Item.id.in_(ids)))
        }
        if ids
        else {}
    )
    found = []
    for item_id in ids:
        prediction, decision = predictions.get(item_id), decisions.get(item_id)
        text, embedding = stored.get(item_id, ("", None))
        if prediction is None or decision is None or embedding is None or prediction.source != "teacher":
            continue
        reasons = set(decision.reason_names)
        if drawn_at_random(reasons):
            continue
        found.append(
            QueuedForReview(
                item_id=item_id,
                text=text,
                prediction=prediction,
                embedding=np.frombuffer(embedding, dtype=np.float32).astype(np.float64),
                vetoed=bool(reasons & VETO_REASONS),
                density=decision.signals.get("density"),
            )
        )
    return found


def accept_rescored(
    session: Session, *, task_id: int, queued: QueuedForReview, probs: tuple[float, ...], label: str, labeler: int
) -> None:
    """Accept a queued item's machine label on re-scoring by a newer certified labeler: a new prediction, a decision
    with the reason ``rescored``, the label, and the item leaves the review queue."""
    old = queued.prediction
    rescored = MachineScore(
        source=old.source,
        model=old.model,
        template_sha=old.template_sha,
        prompt_sha=old.prompt_sha,
        raw_probs=tuple(float(p) for p in old.raw_probs),
        probs=probs,
        truncated=False,
    )
    confidence = max(probs)
    signals: dict[str, object] = {"confidence": confidence, "labeler": labeler}
    _append_history(
        session,
        task_id=task_id,
        item_id=queued.item_id,
        score=rescored,
        label=label,
        confidence=confidence,
        accept=True,
        reasons=["rescored"],
        signals=signals,
    )
    session.execute(delete(ReviewEntry).where(ReviewEntry.item_id == queued.item_id))
    session.execute(update(Item).where(Item.id == queued.item_id).values(state="accepted"))


def _append_history(
    session: Session,
    *,
    task_id: int,
    item_id: int,
    score: MachineScore,
    label: str,
    confidence: float,
    accept: bool,
    reasons: list[str],
    signals: dict[str, object],
) -> None:
    """A prediction, the routing decision on it and, when accepted, the machine label: history only grows."""
    prediction = Prediction(
        item_id=item_id,
        source=score.source,
        model=score.model,
        template_sha=score.template_sha,
        prompt_sha=score.prompt_sha,
        raw_probs=list(score.raw_probs),
        probs=list(score.probs),
        label=label,
        confidence=confidence,
    )
    session.add(prediction)
    session.flush()
    session.add(
        DecisionRecord(item_id=item_id, prediction_id=prediction.id, accept=accept, reasons=reasons, signals=signals)
    )
    if accept:
        session.add(
            Label(
                item_id=item_id,
                task_id=task_id,
                label=label,
                source=score.source,
                confidence=confidence,
                prediction_id=prediction.id,
            )
        )

"""Read models over the append-only history: uniform reviews for fitting and certifying the labeler, labeled items
for kNN and the probe, final labels for training the student."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from sqlalchemy import ColumnElement, String, cast, or_, select
from sqlalchemy.orm import Session

from service.db import id_chunks
from service.pipeline.sources import HUMAN_SOURCES
from service.tables import DecisionRecord, Item, Label, Prediction

UNBIASED_REASONS = frozenset({"cold_start", "audit_sample", "span_proposal"})
"""Reviews drawn uniformly at random; only these may certify a threshold (see pipeline.policy.fit_policy)."""


def drawn_at_random(reasons: Iterable[object]) -> bool:
    """Whether a decision with these reasons sent its item to review by a uniform random draw."""
    return bool({str(reason) for reason in reasons} & UNBIASED_REASONS)


def shown_blind(reasons: Iterable[object]) -> bool:
    """Whether the item is reviewed without the machine's answer: a uniform draw tests the machine that answered,
    and a reviewer shown its answer may anchor on it. A spans task's teacher proposals are the exception: they
    test the span student, which is never shown, and drawing every span anew would waste the teacher's work."""
    names = {str(reason) for reason in reasons}
    return drawn_at_random(names) and "span_proposal" not in names


VETO_REASONS = frozenset({"neighbour_disagreement", "student_disagreement", "out_of_distribution"})


def in_current_regime(shots: int | None, *, few_shot_seen: bool) -> bool:
    """Whether a prediction belongs to the prompts the teacher uses now: once any reviewed prediction had few-shot
    examples, those made zero-shot (the first chunk, before anything was labeled) are left out of calibration.
    Their label bias differs from the few-shot prompts' (SmolLM2 on SMS: raw accuracy 0.22 zero-shot, 0.85 to
    0.98 few-shot), and fitted together they pulled calibrated accuracy of few-shot scores from 0.98 to 0.88.
    Certification keeps them: a worse regime among the uniform reviews only makes the bound more cautious."""
    return not (few_shot_seen and shots == 0)


@dataclass(frozen=True)
class UniformReview:
    """An item a human reviewed after a uniform random draw (cold start or audit), with what the machine had."""

    item_id: int
    text: str
    raw_probs: tuple[float, ...]
    """The teacher's distribution when the item was routed (the input a labeler recomputes its confidence from)."""
    embedding: npt.NDArray[np.float32] | None
    human: str
    """The latest human label: the truth."""
    label_id: int
    """The item's first human label (labels.id): a labeler fitted through an earlier label never saw this one."""
    machine: str
    """The label the machine gave it when it was routed."""
    vetoed: bool
    """A signal other than confidence (neighbours, distance, student) would have sent it to review anyway."""
    audit: bool
    current_regime: bool
    """Scored with the prompts the teacher uses now (see in_current_regime)."""


class Decided(NamedTuple):
    """One routing decision of an item a human labeled, as the reads over reviews need it (a tuple: thousands are
    made per read)."""

    decision_id: int
    item_id: int
    item_state: str
    reasons: list[str]
    """As stored: the readers ask only for reasons that were never renamed (see pipeline.route.RENAMED_REASONS)."""
    shots: int | None
    labeler: int | None
    """The stacked labeler version that routed it (None: the teacher's calibrated confidence alone)."""
    machine: str
    source: str
    raw_probs: list[float]


@dataclass(frozen=True)
class Reviewed:
    """The task's human labels (label id, item id, label, when; oldest first) and the routing decisions of the
    items they label (oldest first): every decision, or only those that drew their item at random. What the
    certification and the lead's dashboard read, once."""

    humans: Sequence[tuple[int, int, str, datetime]]
    decisions: list[Decided]
    few_shot_seen: bool
    """Whether any teacher decision of a resolved item had few-shot examples (see in_current_regime)."""


_DRAWN = or_(
    *(
        cast(DecisionRecord.reasons, String).contains(f'"{reason}"', autoescape=True)
        for reason in sorted(UNBIASED_REASONS)
    )
)
"""Decisions whose stored reasons (a JSON list of names, as text on both stores) include a uniform draw: tested
in SQL, a task with 10k reviews reads the 2k drawn decisions instead of every decision."""


def reviewed(session: Session, *, task_id: int, drawn_only: bool = False) -> Reviewed:
    """The task's human labels and their items' decisions; ``drawn_only``: only the decisions that drew their item
    at random, and the labels of those items (what the certification and the dashboard's page need)."""
    # A join against the labeled items' ids, not against a grouped subquery (SQLite plans that as a scan per
    # row: 35 s on a task of 100k items); only the few columns the readers use (whole rows took 1.2 s at 10k
    # reviews, and the worker reads this before every chunk).
    labeled = select(Label.item_id).where(Label.task_id == task_id, Label.source.in_(HUMAN_SOURCES))
    human = [Label.task_id == task_id, Label.source.in_(HUMAN_SOURCES)]
    if drawn_only:  # only the drawn items' labels
        human.append(
            Label.item_id.in_(select(DecisionRecord.item_id).where(DecisionRecord.item_id.in_(labeled), _DRAWN))
        )
    humans = session.execute(
        select(Label.id, Label.item_id, Label.label, Label.created_at).where(*human).order_by(Label.id)
    ).all()
    if not humans:
        return Reviewed([], [], few_shot_seen=False)
    shots = DecisionRecord.signals["shots"].as_integer()
    rows = session.execute(
        select(
            DecisionRecord.id,
            DecisionRecord.item_id,
            Item.state,
            DecisionRecord.reasons,
            shots,
            DecisionRecord.signals["labeler"].as_integer(),
            Prediction.label,
            Prediction.source,
            Prediction.raw_probs,
        )
        .join(Prediction, Prediction.id == DecisionRecord.prediction_id)
        .join(Item, Item.id == DecisionRecord.item_id)
        .where(DecisionRecord.item_id.in_(labeled), *([_DRAWN] if drawn_only else []))
        .order_by(DecisionRecord.id)
    )
    decisions = [Decided._make(row) for row in rows]
    if drawn_only:
        few_shot = session.scalar(
            select(DecisionRecord.id)
            .join(Prediction, Prediction.id == DecisionRecord.prediction_id)
            .join(Item, Item.id == DecisionRecord.item_id)
            .where(Item.task_id == task_id, Item.state == "resolved", Prediction.source == "teacher", shots > 0)
            .limit(1)
        )
        return Reviewed(humans, decisions, few_shot_seen=few_shot is not None)
    seen = any(d.shots for d in decisions if d.item_state == "resolved" and d.source == "teacher")
    return Reviewed(humans, decisions, few_shot_seen=seen)


def uniform_reviews(session: Session, *, task_id: int, read: Reviewed | None = None) -> list[UniformReview]:
    """The task's uniform reviews with the teacher's scores, oldest first; items the student labeled alone are
    left out (the student's labels are routed by its own threshold, certified on gold at training time). ``read``:
    the task's reviewed rows, where the caller has them already."""
    read = reviewed(session, task_id=task_id, drawn_only=True) if read is None else read
    humans: dict[int, str] = {}
    first: dict[int, int] = {}
    for label_id, item_id, label, _ in read.humans:
        humans[item_id] = label
        first.setdefault(item_id, label_id)
    # The first teacher decision of a resolved item that drew it at random is the item's uniform review.
    chosen: dict[int, Decided] = {}
    for decision in read.decisions:
        if (
            decision.item_id not in chosen
            and decision.item_state == "resolved"
            and decision.source == "teacher"
            and not UNBIASED_REASONS.isdisjoint(decision.reasons)
        ):
            chosen[decision.item_id] = decision
    details = _decision_details(session, [decision.decision_id for decision in chosen.values()])
    return [
        UniformReview(
            item_id=item_id,
            text=details[decision.decision_id][0],
            raw_probs=tuple(float(p) for p in decision.raw_probs),
            embedding=_vector(details[decision.decision_id][1]),
            human=humans[item_id],
            label_id=first[item_id],
            machine=decision.machine,
            vetoed=not VETO_REASONS.isdisjoint(decision.reasons),
            audit="audit_sample" in decision.reasons,
            current_regime=in_current_regime(decision.shots, few_shot_seen=read.few_shot_seen),
        )
        for item_id, decision in chosen.items()
    ]


def audited(session: Session, *, task_id: int, source: str) -> list[tuple[str, str]]:
    """(machine, human) of every item whose label from ``source`` ("teacher" or "student") was drawn for a blind
    audit and has been reviewed since, oldest draw first; the human's latest label is the truth."""
    read = reviewed(session, task_id=task_id, drawn_only=True)
    humans = {item_id: label for _, item_id, label, _ in read.humans}
    drawn: dict[int, str] = {}
    for decision in read.decisions:
        if decision.item_state == "resolved" and decision.source == source and "audit_sample" in decision.reasons:
            drawn.setdefault(decision.item_id, decision.machine)
    return [(machine, humans[item_id]) for item_id, machine in drawn.items()]


def _vector(embedding: bytes | None) -> npt.NDArray[np.float32] | None:
    return np.frombuffer(embedding, dtype=np.float32) if embedding is not None else None


def _decision_details(session: Session, ids: list[int]) -> dict[int, tuple[str, bytes | None]]:
    """decision id -> the item's text and embedding."""
    details = {}
    for chunk in id_chunks(ids):
        for decision_id, text, embedding in session.execute(
            select(DecisionRecord.id, Item.text, Item.embedding)
            .join(Item, Item.id == DecisionRecord.item_id)
            .where(DecisionRecord.id.in_(chunk))
        ):
            details[decision_id] = (text, embedding)
    return details


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
    return _labeled_rows(session, Label.task_id == task_id, Label.id > after_label_id)


def labels_by_id(session: Session, *, task_id: int, label_ids: Collection[int]) -> list[LabeledRow]:
    """The given label rows of the task with their item's text and embedding, oldest first."""
    return _labeled_rows(session, Label.task_id == task_id, Label.id.in_(list(label_ids)))


def _labeled_rows(session: Session, *where: ColumnElement[bool]) -> list[LabeledRow]:
    rows = session.execute(
        select(Label, Item.text, Item.embedding).join(Item, Item.id == Label.item_id).where(*where).order_by(Label.id)
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
    sampled: bool = False
    """A label the service did not pick for looking wrong: a uniform draw (cold start or audit), or an item it
    never routed (labels imported with the items). Only such gold may certify a threshold."""


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
    routed: set[int] = set()
    drawn: set[int] = set()
    for decision in session.scalars(
        select(DecisionRecord).join(Item, Item.id == DecisionRecord.item_id).where(Item.task_id == task_id)
    ):
        routed.add(decision.item_id)
        if drawn_at_random(decision.reason_names):
            drawn.add(decision.item_id)
    return [
        TrainingRow(
            item_id=item_id,
            text=texts[item_id],
            label=label.label,
            source=label.source,
            teacher_probs=tuple(float(p) for p in teacher[item_id].probs) if item_id in teacher else None,
            teacher_label=teacher[item_id].label if item_id in teacher else None,
            template_sha=teacher[item_id].template_sha if item_id in teacher else None,
            sampled=item_id in drawn or item_id not in routed,
        )
        for item_id, label in sorted(final.items())
    ]

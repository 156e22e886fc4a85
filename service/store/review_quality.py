"""Reviewer agreement and accuracy read from the votes, and the adjudication queue where disagreements wait."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.errors import NotFound
from service.pipeline.agreement import (
    PairAgreement,
    ReviewerAccuracy,
    Votes,
    krippendorff_alpha,
    label_votes,
    pairwise_kappa,
    reviewer_accuracy,
)
from service.pipeline.kinds import Shown
from service.pipeline.reviewer_model import ReviewerModel
from service.pipeline.sources import ADJUDICATED
from service.store import answers
from service.store.consistency import INCONSISTENT
from service.store.items import latest_rows
from service.store.tasks import answer_values, label_names, label_value
from service.tables import AdjudicationEntry, Item, Label, Prediction, ReviewVote, Task


@dataclass(frozen=True)
class AgreementReport:
    items_with_several_votes: int
    alpha: float | None
    """Krippendorff's alpha (nominal) over every item answered by two reviewers or more."""
    pairs: list[PairAgreement]
    gold: dict[str, ReviewerAccuracy]
    """Each reviewer's answers on gold items against meta["gold_label"]."""
    audit: dict[str, ReviewerAccuracy]
    """Each reviewer's answers on audit samples against the final label, where more than one human decided it."""
    votes: dict[str, int]
    model: ReviewerModel
    per_label: dict[str, LabelAgreement] | None = None
    """A multi-label task's agreement on each label (present or not); alpha and pairs above compare whole sets."""


@dataclass(frozen=True)
class LabelAgreement:
    alpha: float | None
    pairs: list[PairAgreement]


def agreement_report(session: Session, *, task: Task) -> AgreementReport:
    given = answers.of_task(session, task=task)
    votes, kinds, gold = given.votes, given.kinds, given.gold
    counts: dict[str, int] = {}
    for answered in votes.values():
        for reviewer in answered:
            counts[reviewer] = counts.get(reviewer, 0) + 1
    several = {item_id: answered for item_id, answered in votes.items() if len(answered) >= 2}
    audited = [item_id for item_id in several if kinds[item_id] == "audit"]
    final = _final_labels(session, audited)
    return AgreementReport(
        items_with_several_votes=len(several),
        alpha=krippendorff_alpha(units=[list(answered.values()) for answered in several.values()]),
        pairs=pairwise_kappa(votes=several, spans=task.kind == "spans"),
        gold=reviewer_accuracy(votes={i: votes[i] for i in gold}, truth=gold),
        audit=reviewer_accuracy(votes={i: votes[i] for i in final}, truth=final),
        votes=dict(sorted(counts.items())),
        model=given.reviewer_model(answer_values(task)),
        per_label=_per_label(task, several) if task.kind == "multi_label" else None,
    )


def _per_label(task: Task, several: Votes) -> dict[str, LabelAgreement]:
    names = label_names(task)
    result = {}
    for label in names:
        on_label = label_votes(votes=several, label=label, labels=names)
        result[label] = LabelAgreement(
            alpha=krippendorff_alpha(units=[list(answered.values()) for answered in on_label.values()]),
            pairs=pairwise_kappa(votes=on_label),
        )
    return result


def _final_labels(session: Session, item_ids: list[int]) -> dict[int, str]:
    final: dict[int, str] = {}
    if item_ids:
        rows = session.execute(
            select(Label.item_id, Label.label)
            .join(Item, Item.id == Label.item_id)
            .where(Label.item_id.in_(item_ids), Item.state == "resolved")
            .order_by(Label.id)
        )
        for item_id, label in rows:
            final[item_id] = label
    return final


@dataclass(frozen=True)
class Disputed:
    entry: AdjudicationEntry
    item: Item
    votes: dict[str, str]
    machine: str | None
    """The machine's label (of the item's newest routing decision), if it had one."""

    @property
    def reason(self) -> Literal["disagreement", "audit_contradiction", "inconsistency"]:
        """disagreement (the answers differ), audit_contradiction (an answer, already stored as the label,
        contradicts a machine label the policy would have accepted) or inconsistency (a near-identical item has
        another final label: store.consistency)."""
        if self.entry.explanation.startswith(INCONSISTENT):
            return "inconsistency"
        return "audit_contradiction" if self.item.state == "resolved" else "disagreement"


def adjudication_queue(session: Session, *, task: Task, limit: int = 100) -> list[Disputed]:
    entries = list(
        session.scalars(
            select(AdjudicationEntry)
            .where(AdjudicationEntry.task_id == task.id)
            .order_by(AdjudicationEntry.priority.desc(), AdjudicationEntry.item_id)
            .limit(limit)
        )
    )
    ids = [entry.item_id for entry in entries]
    predictions = latest_rows(session, Prediction, ids)
    result = []
    for entry in entries:
        votes = session.scalars(
            select(ReviewVote)
            .where(ReviewVote.item_id == entry.item_id, ReviewVote.undone_at.is_(None))
            .order_by(ReviewVote.id)
        )
        prediction = predictions.get(entry.item_id)
        result.append(
            Disputed(
                entry,
                session.get_one(Item, entry.item_id),
                {v.reviewer: v.label for v in votes},
                prediction.label if prediction is not None else None,
            )
        )
    return result


def adjudicate(session: Session, *, task: Task, item_id: int, adjudicator: str, label: Shown) -> Label:
    """The final label of a disputed item, given by a lead; it supersedes every earlier label."""
    entry = session.get(AdjudicationEntry, item_id, with_for_update=True)
    if entry is None or entry.task_id != task.id:
        raise NotFound(f"item {item_id} is not waiting for adjudication in task {task.name!r}", field="item_id")
    label = label_value(task, label, text=session.get_one(Item, item_id).text)
    final = Label(
        item_id=item_id, task_id=task.id, label=label, source=ADJUDICATED, reviewer=adjudicator, confidence=None
    )
    session.add(final)
    session.delete(entry)
    session.get_one(Item, item_id).state = "resolved"
    session.flush()
    return final

"""What the lead's dashboard reads: where the items are, how routing and audits went over time, and what the
machine said about every item a human reviewed. Each read is one or two aggregate queries, so the page stays fast
on a task with 100k items."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Integer, cast, func, select
from sqlalchemy.orm import Session

from service.pipeline.task_report import Judged
from service.store.history import UNBIASED_REASONS, Reviewed
from service.tables import (
    AdjudicationEntry,
    ConsistencyCheck,
    DecisionRecord,
    Guideline,
    InconsistentPair,
    Item,
    Label,
    LabelerVersion,
    ModelUsage,
    ReviewVote,
    StudentVersion,
)


def version(session: Session, *, task_id: int) -> tuple[int, ...]:
    """A fingerprint that changes whenever anything the dashboard shows may have: newest ids of the task's items,
    labels, labelers, students, usage rows, guideline versions and inconsistent pairs, of routing decisions and
    review answers (any task's), how many answers were undone, items wait for adjudication and pairs were sent
    there, and when the last consistency check ran. Each is one indexed lookup, so a page can tell in
    milliseconds whether its figures from the last request still hold."""
    parts = [
        select(func.max(Item.id)).where(Item.task_id == task_id),
        select(func.max(Label.id)).where(Label.task_id == task_id),
        select(func.max(LabelerVersion.id)).where(LabelerVersion.task_id == task_id),
        select(func.max(StudentVersion.id)).where(StudentVersion.task_id == task_id),
        select(func.max(ModelUsage.id)).where(ModelUsage.task_id == task_id),
        select(func.max(DecisionRecord.id)),
        select(func.max(ReviewVote.id)),
        select(func.count()).select_from(ReviewVote).where(ReviewVote.undone_at.is_not(None)),
        select(func.count()).select_from(AdjudicationEntry).where(AdjudicationEntry.task_id == task_id),
        select(func.max(InconsistentPair.id)).where(InconsistentPair.task_id == task_id),
        select(func.max(Guideline.id)).where(Guideline.task_id == task_id),
        select(func.count())
        .select_from(InconsistentPair)
        .where(InconsistentPair.task_id == task_id, InconsistentPair.sent_at.is_not(None)),
    ]
    checked = session.scalar(select(ConsistencyCheck.checked_at).where(ConsistencyCheck.task_id == task_id))
    return (*(int(session.scalar(part) or 0) for part in parts), int(checked.timestamp()) if checked else 0)


TIMELINE_POINTS = 60
"""Points on the routing timeline: routed items are counted in this many groups, however many there are."""


@dataclass(frozen=True)
class RoutedPoint:
    at: datetime
    routed: int
    """Routing decisions so far (an item rescored later counts again)."""
    accepted: int


def routing_timeline(session: Session, *, task_id: int) -> list[RoutedPoint]:
    """Cumulative routing decisions and acceptances, in up to TIMELINE_POINTS groups of consecutive decisions."""
    bounds = session.execute(
        select(func.min(DecisionRecord.id), func.max(DecisionRecord.id), func.count())
        .join(Item, Item.id == DecisionRecord.item_id)
        .where(Item.task_id == task_id)
    ).one()
    first, last, total = bounds
    if not total:
        return []
    width = max(1, -(-(last - first + 1) // TIMELINE_POINTS))
    group = cast((DecisionRecord.id - first) / width, Integer)
    rows = session.execute(
        select(
            group,
            func.count(),
            func.sum(cast(DecisionRecord.accept, Integer)),
            func.max(DecisionRecord.created_at),
        )
        .join(Item, Item.id == DecisionRecord.item_id)
        .where(Item.task_id == task_id)
        .group_by(group)
        .order_by(group)
    ).all()
    points, routed, accepted = [], 0, 0
    for _, count, accepts, at in rows:
        routed += int(count)
        accepted += int(accepts or 0)
        points.append(RoutedPoint(at=at, routed=routed, accepted=accepted))
    return points


def reviewed_items(read: Reviewed, *, labels: list[str]) -> list[Judged]:
    """Every routed item with a human label, oldest review first, with what the machine had said: the label its
    newest routing decision carried, the model behind it, and the teacher's own top label before calibration.
    Given a read of the drawn decisions only: the items drawn at random, each with the decision that drew it."""
    humans = {item_id: (label, at) for _, item_id, label, at in read.humans}
    newest = {decision.item_id: decision for decision in read.decisions}
    result = []
    for item_id, (human, at) in sorted(humans.items(), key=lambda pair: pair[1][1]):
        decision = newest.get(item_id)
        if decision is None:
            continue  # imported with its label: never routed
        raw, raw_label = decision.raw_probs, None
        if decision.source == "teacher" and raw and len(raw) == len(labels):
            raw_label = labels[max(range(len(raw)), key=lambda k: float(raw[k]))]
        result.append(
            Judged(
                human=human,
                reviewed_at=at,
                machine=decision.machine,
                source=decision.source,
                raw_label=raw_label,
                stacked=decision.labeler is not None,
                uniform=not UNBIASED_REASONS.isdisjoint(decision.reasons),
                audit="audit_sample" in decision.reasons,
            )
        )
    return result


def looks(session: Session, *, task_id: int) -> list[LabelerVersion]:
    """The task's labelers that had their look, in order."""
    return list(
        session.scalars(
            select(LabelerVersion)
            .where(LabelerVersion.task_id == task_id, LabelerVersion.looked_at.is_not(None))
            .order_by(LabelerVersion.look)
        )
    )

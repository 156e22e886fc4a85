"""What the lead's dashboard reads: where the items are, how routing and audits went over time, and what the
machine said about every item a human reviewed. Each read is one or two aggregate queries, so the page stays fast
on a task with 100k items."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Integer, cast, func, select
from sqlalchemy.orm import Session

from service.pipeline.sources import HUMAN_SOURCES
from service.pipeline.task_report import Judged
from service.store.history import drawn_at_random
from service.tables import DecisionRecord, Item, Label, LabelerVersion, Prediction

TIMELINE_POINTS = 60
"""Points on the routing timeline: routed items are counted in this many groups, however many there are."""


def final_sources(session: Session, *, task_id: int) -> dict[str, int]:
    """Items per source of their final (newest) label: teacher, student, human."""
    newest = select(func.max(Label.id).label("id")).where(Label.task_id == task_id).group_by(Label.item_id).subquery()
    rows = session.execute(
        select(Label.source, func.count()).join(newest, newest.c.id == Label.id).group_by(Label.source)
    )
    return {str(source): int(count) for source, count in rows.all()}


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


def reviewed_items(session: Session, *, task_id: int, labels: list[str]) -> list[Judged]:
    """Every routed item with a human label, oldest review first, with what the machine had said: the label its
    newest routing decision carried, the model behind it, and the teacher's own top label before calibration."""
    newest_human = (
        select(func.max(Label.id).label("id"))
        .where(Label.task_id == task_id, Label.source.in_(HUMAN_SOURCES))
        .group_by(Label.item_id)
        .subquery()
    )
    newest_decision = (
        select(func.max(DecisionRecord.id).label("id"))
        .join(Item, Item.id == DecisionRecord.item_id)
        .where(Item.task_id == task_id)
        .group_by(DecisionRecord.item_id)
        .subquery()
    )
    rows = session.execute(
        select(
            Label.label,
            Label.created_at,
            Prediction.label,
            Prediction.source,
            Prediction.raw_probs,
            DecisionRecord.reasons,
            DecisionRecord.signals,
        )
        .join(newest_human, newest_human.c.id == Label.id)
        .join(DecisionRecord, DecisionRecord.item_id == Label.item_id)
        .join(newest_decision, newest_decision.c.id == DecisionRecord.id)
        .join(Prediction, Prediction.id == DecisionRecord.prediction_id)
        .order_by(Label.id)
    ).all()
    result = []
    for human, at, machine, source, raw, reasons, signals in rows:
        raw_label = None
        if source == "teacher" and raw and len(raw) == len(labels):
            raw_label = labels[max(range(len(raw)), key=lambda k: float(raw[k]))]
        result.append(
            Judged(
                human=human,
                reviewed_at=at,
                machine=machine,
                source=source,
                raw_label=raw_label,
                stacked="labeler" in signals,
                uniform=drawn_at_random(reasons),
                audit="audit_sample" in reasons,
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

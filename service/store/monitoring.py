"""What /metrics reports from the database at scrape time: per task, items by state, labels by source, the review
backlog and the certified bound; the job queue's depth and age. Read from the shared database, so every API replica
reports the same figures whichever process wrote them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.tables import Item, Job, Label, LabelerVersion, ReviewEntry, StudentVersion, Task


@dataclass
class TaskFigures:
    items_by_state: dict[str, int] = field(default_factory=dict)
    labels_by_source: dict[str, int] = field(default_factory=dict)
    review_backlog: int = 0
    error_bound: float | None = None
    """The bound of the newest certified labeler (a spans task: of its promoted tagger); None before the first
    certificate."""

    @property
    def coverage(self) -> float | None:
        """Share of routed items (all but queued) accepted by the machine; None before any is routed."""
        routed = sum(count for state, count in self.items_by_state.items() if state != "queued")
        return self.items_by_state.get("accepted", 0) / routed if routed else None


def task_figures(session: Session) -> dict[str, TaskFigures]:
    """Every task's figures, by task name, in four grouped queries."""
    names = dict(session.execute(select(Task.id, Task.name)).all())
    figures = {name: TaskFigures() for name in names.values()}
    by_state = select(Item.task_id, Item.state, func.count()).group_by(Item.task_id, Item.state)
    for task_id, state, count in session.execute(by_state):
        figures[names[task_id]].items_by_state[state] = int(count)
    by_source = select(Label.task_id, Label.source, func.count()).group_by(Label.task_id, Label.source)
    for task_id, source, count in session.execute(by_source):
        figures[names[task_id]].labels_by_source[source] = int(count)
    backlog = select(ReviewEntry.task_id, func.count()).group_by(ReviewEntry.task_id)
    for task_id, count in session.execute(backlog):
        figures[names[task_id]].review_backlog = int(count)
    newest = (
        select(LabelerVersion.task_id, func.max(LabelerVersion.look).label("look"))
        .where(LabelerVersion.threshold.is_not(None))
        .group_by(LabelerVersion.task_id)
        .subquery()
    )
    bounds = select(LabelerVersion.task_id, LabelerVersion.error_bound).join(
        newest, (LabelerVersion.task_id == newest.c.task_id) & (LabelerVersion.look == newest.c.look)
    )
    for task_id, bound in session.execute(bounds):
        figures[names[task_id]].error_bound = bound
    # A spans task's sets are accepted by its promoted tagger, certified on its gold (task_policy.span_policy).
    taggers = select(StudentVersion.task_id, StudentVersion.metrics).join(Task, Task.id == StudentVersion.task_id)
    for task_id, metrics in session.execute(taggers.where(Task.kind == "spans", StudentVersion.promoted.is_(True))):
        bound = metrics.get("threshold_error_bound")
        figures[names[task_id]].error_bound = None if bound is None else float(bound)
    return figures


@dataclass(frozen=True)
class JobFigures:
    kind: str
    state: str
    count: int
    oldest_age_s: float
    """Age of the oldest job of this kind in this state (for queued ones: how long the queue has made it wait)."""


def job_figures(session: Session, *, now: datetime) -> list[JobFigures]:
    """Jobs by kind and state, with the age of the oldest; finished jobs only count."""
    rows = session.execute(
        select(Job.kind, Job.state, func.count(), func.min(Job.created_at, type_=Job.created_at.type)).group_by(
            Job.kind, Job.state
        )
    ).all()
    return [
        JobFigures(
            kind=kind,
            state=state,
            count=int(count),
            oldest_age_s=0.0 if state in ("done", "failed") else _seconds_since(oldest, now),
        )
        for kind, state, count, oldest in rows
    ]


def _seconds_since(then: datetime, now: datetime) -> float:
    return max(0.0, (now - then).total_seconds())

"""Who reviews what: task assignments, the votes an item needs, and the reviewer's and the task's progress."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from service.errors import Forbidden, Invalid, NotFound
from service.pipeline.reviewer_model import DEFAULT_AGGREGATE_AT
from service.store.keys import SEES_EVERY_TASK
from service.store.tasks import get_task
from service.tables import (
    AdjudicationEntry,
    ApiKey,
    Item,
    ReviewAssignment,
    ReviewEntry,
    ReviewSettings,
    ReviewVote,
    Task,
)


def assign(session: Session, *, task: Task, reviewer: str, assigned_by: str) -> ReviewAssignment:
    key = session.scalar(select(ApiKey).where(ApiKey.name == reviewer))
    if key is None:
        raise NotFound(f"no API key named {reviewer!r}", field="reviewer")
    if key.role not in ("reviewer", *SEES_EVERY_TASK):
        raise Invalid(f"{reviewer!r} has role {key.role!r}; only reviewer keys can be assigned", field="reviewer")
    existing = session.get(ReviewAssignment, (task.id, reviewer))
    if existing is not None:
        return existing
    assignment = ReviewAssignment(task_id=task.id, reviewer=reviewer, assigned_by=assigned_by)
    session.add(assignment)
    session.flush()
    return assignment


def unassign(session: Session, *, task: Task, reviewer: str) -> None:
    assignment = session.get(ReviewAssignment, (task.id, reviewer))
    if assignment is None:
        raise NotFound(f"{reviewer!r} is not assigned to task {task.name!r}", field="reviewer")
    session.delete(assignment)


def assigned_reviewers(session: Session, *, task: Task) -> list[str]:
    return list(
        session.scalars(
            select(ReviewAssignment.reviewer)
            .where(ReviewAssignment.task_id == task.id)
            .order_by(ReviewAssignment.reviewer)
        )
    )


def visible_tasks(session: Session, key: ApiKey) -> list[Task]:
    """Every task for a lead or an admin; for a reviewer, the tasks assigned to them (none until an admin assigns
    one)."""
    query = select(Task).order_by(Task.id)
    if key.role not in SEES_EVERY_TASK:
        query = query.join(ReviewAssignment, ReviewAssignment.task_id == Task.id).where(
            ReviewAssignment.reviewer == key.name
        )
    return list(session.scalars(query))


def task_for(session: Session, key: ApiKey, name: str) -> Task:
    """The task, if this key may review it."""
    if key.role in SEES_EVERY_TASK:
        return get_task(session, name)
    row = session.execute(
        select(Task, ReviewAssignment.reviewer)
        .outerjoin(ReviewAssignment, and_(ReviewAssignment.task_id == Task.id, ReviewAssignment.reviewer == key.name))
        .where(Task.name == name)
    ).first()
    if row is None:
        raise NotFound(f"no task named {name!r}", field="task")
    task, assigned = row
    if assigned is None:
        raise Forbidden(
            f"task {name!r} is not assigned to {key.name!r}; an admin assigns it with "
            f"PUT /v1/tasks/{name}/reviewers/{key.name}",
            field="task",
        )
    return task


def review_settings(session: Session, *, task_id: int) -> ReviewSettings:
    """The task's settings; the defaults when none were stored (one vote each, no second reviews, disagreements
    settled by the weighted aggregate at DEFAULT_AGGREGATE_AT)."""
    return session.get(ReviewSettings, task_id) or ReviewSettings(
        task_id=task_id,
        audit_reviewers=1,
        gold_reviewers=1,
        second_review_below=None,
        aggregate_at=DEFAULT_AGGREGATE_AT,
    )


def update_settings(
    session: Session,
    *,
    task: Task,
    audit_reviewers: int,
    gold_reviewers: int,
    second_review_below: float | None,
    aggregate_at: float | None,
) -> ReviewSettings:
    row = session.get(ReviewSettings, task.id)
    if row is None:
        row = ReviewSettings(task_id=task.id)
        session.add(row)
    row.audit_reviewers = audit_reviewers
    row.gold_reviewers = gold_reviewers
    row.second_review_below = second_review_below
    row.aggregate_at = aggregate_at
    session.flush()
    return row


def required_votes(settings: ReviewSettings, *, kind: str) -> int:
    """Answers an audit or gold item needs under the task's settings; one for any other item."""
    return {"audit": settings.audit_reviewers, "gold": settings.gold_reviewers}.get(kind, 1)


def adjudication_count(session: Session, *, task: Task) -> int:
    """Items of the task waiting for a lead's final label."""
    return int(
        session.scalar(select(func.count()).select_from(AdjudicationEntry).where(AdjudicationEntry.task_id == task.id))
        or 0
    )


@dataclass(frozen=True)
class Progress:
    reviewer: str
    reviewed: int
    """The reviewer's answers in this task, undone ones left out."""
    waiting: int
    adjudication: int
    items: int
    counts: dict[str, int]


def progress(session: Session, *, task: Task, reviewer: str) -> Progress:
    reviewed = session.scalar(
        select(func.count())
        .select_from(ReviewVote)
        .where(ReviewVote.task_id == task.id, ReviewVote.reviewer == reviewer, ReviewVote.undone_at.is_(None))
    )
    waiting = session.scalar(select(func.count()).select_from(ReviewEntry).where(ReviewEntry.task_id == task.id))
    counts = {
        str(state): int(n)
        for state, n in session.execute(
            select(Item.state, func.count()).where(Item.task_id == task.id).group_by(Item.state)
        ).all()
    }
    return Progress(
        reviewer,
        int(reviewed or 0),
        int(waiting or 0),
        adjudication_count(session, task=task),
        sum(counts.values()),
        counts,
    )

"""The review queue: items leased to one reviewer at a time, resolved by a human label that supersedes the machine's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, case, exists, func, or_, select
from sqlalchemy.orm import Session

from service.errors import Conflict, NotFound
from service.store.tasks import check_label
from service.tables import Decision, Item, Label, Prediction, ReviewEntry, ReviewSkip, Task, utcnow


def enqueue(session: Session, *, item: Item, priority: float, explanation: str) -> None:
    if session.get(ReviewEntry, item.id) is None:
        session.add(ReviewEntry(item_id=item.id, task_id=item.task_id, priority=priority, explanation=explanation))


@dataclass(frozen=True)
class Leased:
    entry: ReviewEntry
    item: Item
    prediction: Prediction | None
    reasons: list[str]
    lease_expires: datetime


def next_item(session: Session, *, task: Task, reviewer: str, lease_s: float) -> Leased | None:
    """Lease the most urgent waiting item of the task to `reviewer` (or renew the one they already hold)."""
    now = utcnow()
    skipped = exists().where(ReviewSkip.item_id == ReviewEntry.item_id, ReviewSkip.reviewer == reviewer)
    query = (
        select(ReviewEntry)
        .where(
            ReviewEntry.task_id == task.id,
            or_(
                ReviewEntry.leased_to.is_(None),
                ReviewEntry.leased_to == reviewer,
                ReviewEntry.lease_expires < now,
            ),
            ~skipped,
        )
        # An item the reviewer already holds comes back first, so a reload does not leak leases.
        .order_by(
            case((ReviewEntry.leased_to == reviewer, 0), else_=1), ReviewEntry.priority.desc(), ReviewEntry.item_id
        )
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    entry = session.scalar(query)
    if entry is None:
        return None
    expires = now + timedelta(seconds=lease_s)
    entry.leased_to = reviewer
    entry.lease_expires = expires
    item = session.get_one(Item, entry.item_id)
    prediction = session.scalar(
        select(Prediction).where(Prediction.item_id == item.id).order_by(Prediction.id.desc()).limit(1)
    )
    return Leased(entry, item, prediction, latest_reasons(session, item.id), expires)


def resolve(session: Session, *, task: Task, item_id: int, reviewer: str, label: str) -> Label:
    """Record the human label. Repeating the same resolution is a no-op that returns the stored label."""
    check_label(task, label)
    item = session.get(Item, item_id)
    if item is None or item.task_id != task.id:
        raise NotFound(f"no item {item_id} in task {task.name!r}", field="item_id")
    entry = session.get(ReviewEntry, item_id, with_for_update=True)
    if entry is None:
        last = session.scalar(select(Label).where(Label.item_id == item_id).order_by(Label.id.desc()).limit(1))
        if last is not None and last.source == "human" and last.reviewer == reviewer and last.label == label:
            return last
        raise Conflict(f"item {item_id} is not waiting for review", field="item_id")
    if entry.leased_to not in (None, reviewer) and not _expired(entry):
        raise Conflict(f"item {item_id} is leased to another reviewer", field="item_id")
    human = Label(item_id=item_id, task_id=task.id, label=label, source="human", reviewer=reviewer, confidence=None)
    session.add(human)
    session.delete(entry)
    item.state = "resolved"
    session.flush()
    return human


def skip(session: Session, *, task: Task, item_id: int, reviewer: str) -> None:
    entry = session.get(ReviewEntry, item_id, with_for_update=True)
    if entry is None or entry.task_id != task.id:
        raise NotFound(f"item {item_id} is not waiting for review in task {task.name!r}", field="item_id")
    if session.get(ReviewSkip, (item_id, reviewer)) is None:
        session.add(ReviewSkip(item_id=item_id, reviewer=reviewer))
    if entry.leased_to == reviewer:
        entry.leased_to = None
        entry.lease_expires = None


def waiting_count(session: Session, *, task: Task) -> int:
    return int(session.scalar(select(func.count()).select_from(ReviewEntry).where(ReviewEntry.task_id == task.id)) or 0)


def human_count(session: Session, *, task_id: int) -> int:
    return int(
        session.scalar(
            select(func.count()).select_from(Label).where(and_(Label.task_id == task_id, Label.source == "human"))
        )
        or 0
    )


def latest_reasons(session: Session, item_id: int) -> list[str]:
    decision = session.scalar(select(Decision).where(Decision.item_id == item_id).order_by(Decision.id.desc()).limit(1))
    return [str(reason) for reason in decision.reasons] if decision is not None else []


def _expired(entry: ReviewEntry) -> bool:
    expires = entry.lease_expires
    if expires is None:
        return True
    if expires.tzinfo is None:
        # SQLite hands datetimes back naive; they were written in UTC.
        expires = expires.replace(tzinfo=utcnow().tzinfo)
    return expires < utcnow()

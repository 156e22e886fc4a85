"""Labeler candidates: the stack and probe fitted before each look, and what the look certified for them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.pipeline.sources import HUMAN_SOURCES
from service.tables import Label, LabelerVersion, utcnow


def latest(session: Session, *, task_id: int, certified: bool = False) -> LabelerVersion | None:
    """The newest labeler of the task (only those with a certified threshold when ``certified``)."""
    query = select(LabelerVersion).where(LabelerVersion.task_id == task_id)
    if certified:
        query = query.where(LabelerVersion.threshold.is_not(None))
    return session.scalar(query.order_by(LabelerVersion.look.desc()).limit(1))


def looks_done(session: Session, *, task_id: int) -> int:
    return (
        session.scalar(
            select(func.count()).where(LabelerVersion.task_id == task_id, LabelerVersion.looked_at.is_not(None))
        )
        or 0
    )


def delta_spent(session: Session, *, task_id: int) -> float:
    """What the task's looks taken so far spent of delta."""
    return float(
        session.scalar(
            select(func.sum(LabelerVersion.delta_spent)).where(
                LabelerVersion.task_id == task_id, LabelerVersion.looked_at.is_not(None)
            )
        )
        or 0.0
    )


def newest_human_label(session: Session, *, task_id: int) -> int:
    """The id of the task's newest human label (0 before any): what a labeler fitted now has seen."""
    return (
        session.scalar(select(func.max(Label.id)).where(Label.task_id == task_id, Label.source.in_(HUMAN_SOURCES))) or 0
    )


def human_labels_since(session: Session, *, task_id: int, label_id: int) -> int:
    """Human labels of the task newer than ``label_id``: what a labeler fitted through it has not seen."""
    return int(
        session.scalar(
            select(func.count()).where(Label.task_id == task_id, Label.source.in_(HUMAN_SOURCES), Label.id > label_id)
        )
        or 0
    )


def add_candidate(
    session: Session,
    *,
    task_id: int,
    look: int,
    stack: dict[str, Any],
    probe: dict[str, Any] | None,
    delta_spent: float,
    look_size: int | None,
    floor: float,
    floor_share: float | None,
    sure_share: float | None,
    fitted_on: int,
    fitted_through: int,
    expected_slice: int | None,
) -> LabelerVersion | None:
    """Store the candidate that look ``look`` will test; None when another worker stored it first (theirs
    stands)."""
    row = LabelerVersion(
        task_id=task_id,
        look=look,
        stack=stack,
        probe=probe,
        threshold=None,
        error_bound=None,
        delta_spent=delta_spent,
        look_size=look_size,
        floor=floor,
        floor_share=floor_share,
        sure_share=sure_share,
        fitted_on=fitted_on,
        certified_on=0,
        fitted_through=fitted_through,
        expected_slice=expected_slice,
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return None
    return row


def record_look(
    session: Session, row: LabelerVersion, *, threshold: float | None, error_bound: float | None, certified_on: int
) -> bool:
    """Record the candidate's one look; False when another worker recorded it first (theirs stands: a look is
    never taken twice)."""
    done = session.execute(
        update(LabelerVersion)
        .where(LabelerVersion.id == row.id, LabelerVersion.looked_at.is_(None))
        .values(threshold=threshold, error_bound=error_bound, certified_on=certified_on, looked_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.refresh(row)
    return bool(getattr(done, "rowcount", 0))


def plan_look(session: Session, row: LabelerVersion, *, look_size: int, delta_spent: float) -> bool:
    """Give a candidate that had no look planned (its budget paid for none) its look, once; False when it had one."""
    done = session.execute(
        update(LabelerVersion)
        .where(LabelerVersion.id == row.id, LabelerVersion.look_size.is_(None), LabelerVersion.looked_at.is_(None))
        .values(look_size=look_size, delta_spent=delta_spent)
        .execution_options(synchronize_session=False)
    )
    session.refresh(row)
    return bool(getattr(done, "rowcount", 0))

"""Labeler versions: the stack and probe fitted at each look and the threshold certified for them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.tables import LabelerVersion


def latest(session: Session, *, task_id: int, certified: bool = False) -> LabelerVersion | None:
    """The newest labeler of the task (only those with a certified threshold when ``certified``)."""
    query = select(LabelerVersion).where(LabelerVersion.task_id == task_id)
    if certified:
        query = query.where(LabelerVersion.threshold.is_not(None))
    return session.scalar(query.order_by(LabelerVersion.look.desc()).limit(1))


def add(
    session: Session,
    *,
    task_id: int,
    look: int,
    stack: dict[str, Any],
    probe: dict[str, Any] | None,
    threshold: float | None,
    error_bound: float | None,
    delta_spent: float,
    fitted_on: int,
    certified_on: int,
) -> LabelerVersion | None:
    """Store the labeler of a look; None when another worker stored that look first (the look is theirs)."""
    row = LabelerVersion(
        task_id=task_id,
        look=look,
        stack=stack,
        probe=probe,
        threshold=threshold,
        error_bound=error_bound,
        delta_spent=delta_spent,
        fitted_on=fitted_on,
        certified_on=certified_on,
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return None
    return row

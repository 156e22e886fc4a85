"""Student versions of a task: registry rows beside the adapter folders, promotion and demotion."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from service.errors import NotFound
from service.tables import StudentVersion, Task


def next_version(session: Session, *, task_id: int) -> str:
    count = session.scalar(select(func.count()).select_from(StudentVersion).where(StudentVersion.task_id == task_id))
    return f"v{int(count or 0) + 1}"


def add(session: Session, *, task_id: int, version: str, path: str, metrics: dict[str, Any]) -> StudentVersion:
    row = StudentVersion(task_id=task_id, version=version, path=path, metrics=metrics)
    session.add(row)
    session.flush()
    return row


def list_versions(session: Session, *, task_id: int) -> list[StudentVersion]:
    return list(
        session.scalars(select(StudentVersion).where(StudentVersion.task_id == task_id).order_by(StudentVersion.id))
    )


def get(session: Session, *, task: Task, version: str) -> StudentVersion:
    row = session.scalar(
        select(StudentVersion).where(StudentVersion.task_id == task.id, StudentVersion.version == version)
    )
    if row is None:
        raise NotFound(f"task {task.name!r} has no student {version!r}", field="version")
    return row


def promoted(session: Session, *, task_id: int) -> StudentVersion | None:
    return session.scalar(
        select(StudentVersion).where(StudentVersion.task_id == task_id, StudentVersion.promoted.is_(True)).limit(1)
    )


def set_promoted(session: Session, *, row: StudentVersion, promoted_flag: bool) -> None:
    """At most one promoted version per task: promoting one demotes the others."""
    if promoted_flag:
        session.execute(update(StudentVersion).where(StudentVersion.task_id == row.task_id).values(promoted=False))
    row.promoted = promoted_flag

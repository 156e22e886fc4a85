"""What a backup needs from the database: its contents in counts, its schema revision, and student folders moved
to another adapters folder after a restore (see service/backup.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from service.tables import Item, Label, ReviewVote, StudentVersion, Task


@dataclass(frozen=True)
class Contents:
    tasks: int
    items: int
    labels: int
    review_answers: int
    students: int


def contents(session: Session) -> Contents:
    def count(table: Any) -> int:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)

    return Contents(
        tasks=count(Task),
        items=count(Item),
        labels=count(Label),
        review_answers=count(ReviewVote),
        students=count(StudentVersion),
    )


def revision(session: Session) -> str:
    return str(session.connection().exec_driver_sql("SELECT version_num FROM alembic_version").scalar())


def move_students(session: Session, old: Path, new: Path) -> None:
    """Student folders were saved under the backed-up service's adapters folder; point them at this one's."""
    if old == new:
        return
    for row in session.scalars(select(StudentVersion)):
        path = Path(row.path)
        if path.is_relative_to(old):
            session.execute(
                update(StudentVersion).where(StudentVersion.id == row.id).values(path=str(new / path.relative_to(old)))
            )

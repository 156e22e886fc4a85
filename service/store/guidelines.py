"""A task's guidelines for reviewers, as versions: the first is the task's instructions; revising them adds one."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.errors import Invalid
from service.tables import Guideline, Task

MAX_CHARS = 100_000
FIRST_AUTHOR = "task"
"""The author of version 1: the instructions the task was created with."""


def start(session: Session, task: Task) -> Guideline:
    """Version 1, from the task's instructions (when the task is created)."""
    first = Guideline(task_id=task.id, version=1, text=task.instructions, author=FIRST_AUTHOR)
    session.add(first)
    session.flush()
    return first


def current(session: Session, *, task: Task) -> Guideline:
    found = session.scalar(
        select(Guideline).where(Guideline.task_id == task.id).order_by(Guideline.version.desc()).limit(1)
    )
    return found if found is not None else start(session, task)


def current_version(session: Session, *, task_id: int) -> int | None:
    """The number of the task's newest version, in one indexed read (recorded with every answer)."""
    return session.scalar(select(func.max(Guideline.version)).where(Guideline.task_id == task_id))


def versions(session: Session, *, task: Task) -> list[Guideline]:
    current(session, task=task)
    return list(session.scalars(select(Guideline).where(Guideline.task_id == task.id).order_by(Guideline.version)))


def revise(session: Session, *, task: Task, text: str, author: str) -> tuple[Guideline, bool]:
    """A new version with ``text``, or the current one when the text is the same; and whether one was added."""
    if not text.strip():
        raise Invalid("guidelines cannot be empty", field="text")
    if len(text) > MAX_CHARS:
        raise Invalid(f"guidelines are {len(text):,} characters; at most {MAX_CHARS:,}", field="text")
    latest = current(session, task=task)
    if latest.text == text:
        return latest, False
    revised = Guideline(task_id=task.id, version=latest.version + 1, text=text, author=author)
    session.add(revised)
    session.flush()
    return revised, True

"""Every active review answer of a task, and the reviewer model fitted on them (store.review reads it to weigh
answers and to ask for second reviews; the agreement report and the dashboard show it)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.errors import Invalid
from service.pipeline.reviewer_model import ReviewerModel, fit_reviewers
from service.store import tasks
from service.tables import Item, ReviewVote, Task


@dataclass(frozen=True)
class Answers:
    """Every active answer in a task, and the gold labels of the gold items among them."""

    votes: dict[int, dict[str, str]]
    """item id -> reviewer -> label."""
    kinds: dict[int, str]
    gold: dict[int, str]
    versions: dict[tuple[int, str], int | None]
    """(item id, reviewer) -> the guidelines version the answer was given under (None: before versions)."""

    def reviewer_model(self, labels: list[str] | None, *, also: Iterable[str] = ()) -> ReviewerModel:
        """The reviewers' confusion matrices, fitted on the gold and multiply answered items, over ``labels``
        (tasks.answer_values); None: over every distinct answer given and ``also`` (an answer being recorded), as
        for a spans task's span sets, whose answers are right only when the whole set is."""
        if labels is None:
            given = {label for answered in self.votes.values() for label in answered.values()}
            labels = sorted(given | {*self.gold.values(), *also})
        return fit_reviewers(votes=self.votes, labels=labels, gold=self.gold)


def of_task(session: Session, *, task: Task) -> Answers:
    active = session.execute(
        select(ReviewVote.item_id, ReviewVote.reviewer, ReviewVote.label, ReviewVote.kind, ReviewVote.guideline_version)
        .where(ReviewVote.task_id == task.id, ReviewVote.undone_at.is_(None))
        .order_by(ReviewVote.id)
    ).all()
    return _answers(session, task, active)


def with_times(session: Session, *, task: Task) -> tuple[Answers, dict[str, list[datetime]]]:
    """The active answers, and when each reviewer answered (undone answers too: they took the reviewer's time),
    from one read of the votes (the lead's dashboard needs both)."""
    times: dict[str, list[datetime]] = defaultdict(list)
    active = []
    for item_id, reviewer, label, kind, version, at, undone in session.execute(
        select(
            ReviewVote.item_id,
            ReviewVote.reviewer,
            ReviewVote.label,
            ReviewVote.kind,
            ReviewVote.guideline_version,
            ReviewVote.created_at,
            ReviewVote.undone_at.is_not(None),
        )
        .where(ReviewVote.task_id == task.id)
        .order_by(ReviewVote.id)
    ):
        times[reviewer].append(at)
        if not undone:
            active.append((item_id, reviewer, label, kind, version))
    return _answers(session, task, active), dict(times)


def _answers(session: Session, task: Task, active: Iterable[tuple[int, str, str, str, int | None]]) -> Answers:
    votes: dict[int, dict[str, str]] = {}
    kinds: dict[int, str] = {}
    versions: dict[tuple[int, str], int | None] = {}
    for item_id, reviewer, label, kind, version in active:
        votes.setdefault(item_id, {})[reviewer] = label
        kinds[item_id] = kind
        versions[(item_id, reviewer)] = version
    gold_ids = [item_id for item_id, kind in kinds.items() if kind == "gold"]
    stored = session.execute(select(Item.id, Item.text, Item.meta).where(Item.id.in_(gold_ids))).all()
    gold = {
        item_id: answer
        for item_id, text, meta in stored
        if (answer := _gold(task, meta.get("gold_label"), text)) is not None
    }
    return Answers(votes, kinds, gold, versions)


def _gold(task: Task, given: object, text: str) -> str | None:
    """A gold item's answer as the task stores labels (a label set's or span set's name), so that it compares with
    reviewers' answers; None without one, or for one the task cannot store (batches check it since)."""
    if given is None:
        return None
    try:
        return tasks.read_label(task, given, text)
    except Invalid:
        return None

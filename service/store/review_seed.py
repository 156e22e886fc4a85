"""A review queue seeded in bulk (rows inserted many at a time, not through the labeling loop), for the review
load benchmark: items waiting for review with a teacher prediction each, and reviewer keys assigned to the task."""

from __future__ import annotations

import uuid

import numpy as np
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from service.api.schemas.tasks import TaskCreate, TaskLabel
from service.store import keys, tasks
from service.tables import Batch, DecisionRecord, Item, Prediction, ReviewAssignment, ReviewEntry, Task


def seed_review_queue(
    session: Session, *, labels: tuple[str, ...], items: int, reviewers: int
) -> tuple[str, list[str]]:
    """A new task with ``items`` items waiting for review; returns its name and one assigned reviewer key per
    reviewer."""
    task, batch = seeded_task(session, prefix="load", labels=labels, items=items, epsilon=0.05)
    session.execute(
        insert(Item),
        [item_row(task, batch, i, state="review") for i in range(items)],
    )
    _seed_predictions(session, task_id=task.id)
    plain = []
    for index in range(reviewers):
        name = f"{task.name}-reviewer-{index}"
        plain.append(keys.create_key(session, name=name, role="reviewer")[1])
        session.add(ReviewAssignment(task_id=task.id, reviewer=name, assigned_by="bench"))
    return task.name, plain


def seeded_task(
    session: Session, *, prefix: str, labels: tuple[str, ...], items: int, epsilon: float = 0.05
) -> tuple[Task, Batch]:
    """A new task named ``prefix``-<random> and one batch for ``items`` items, to insert them into."""
    task = tasks.create_task(
        session,
        TaskCreate(
            name=f"{prefix}-{uuid.uuid4().hex[:8]}", labels=[TaskLabel(name=label) for label in labels], epsilon=epsilon
        ),
    )
    batch = Batch(task_id=task.id, idempotency_key=None, request_sha="0" * 64, item_count=items)
    session.add(batch)
    session.flush()
    return task, batch


def item_row(task: Task, batch: Batch, index: int, **columns: object) -> dict[str, object]:
    """An items row of a seeded batch: message ``index``, with any other ``columns``."""
    return {"task_id": task.id, "batch_id": batch.id, "external_id": f"i{index}", "text": f"message {index}", **columns}


def _seed_predictions(session: Session, *, task_id: int) -> None:
    rng = np.random.default_rng(0)
    ids = list(session.scalars(select(Item.id).where(Item.task_id == task_id).order_by(Item.id)))
    confidence = rng.uniform(0.5, 0.99, size=len(ids))
    session.execute(
        insert(Prediction),
        [
            {
                "item_id": item_id,
                "source": "teacher",
                "model": "bench",
                "raw_probs": [float(c), float(1 - c)],
                "probs": [float(c), float(1 - c)],
                "label": "ham",
                "confidence": float(c),
            }
            for item_id, c in zip(ids, confidence, strict=True)
        ],
    )
    predictions = dict(
        session.execute(select(Prediction.item_id, Prediction.id).where(Prediction.item_id.in_(ids))).all()
    )
    session.execute(
        insert(DecisionRecord),
        [
            {"item_id": item_id, "prediction_id": predictions[item_id], "accept": False, "reasons": ["low_confidence"]}
            for item_id in ids
        ],
    )
    session.execute(
        insert(ReviewEntry),
        [
            {"item_id": item_id, "task_id": task_id, "priority": float(1 - c), "explanation": "bench"}
            for item_id, c in zip(ids, confidence, strict=True)
        ],
    )

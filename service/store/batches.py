"""Batches of items: creation (idempotent), status counts and labels read back with cursor paging."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.api.schemas.batches import ItemCreate
from service.errors import Conflict, Invalid, NotFound
from service.store import jobs
from service.store.items import chunk_of, latest_rows
from service.tables import Batch, DecisionRecord, Item, Job, Label, Prediction, Task

ITEM_STATES = ("queued", "accepted", "review", "resolved")


def request_sha(items: Sequence[ItemCreate]) -> str:
    digest = hashlib.sha256()
    for item in items:
        digest.update(json.dumps([item.id, item.text, item.meta], sort_keys=True).encode())
    return digest.hexdigest()


JOB_ITEMS = 1000
"""Items per label_batch job: a larger batch is split into chunk jobs that any worker claims, so N workers share
it."""


def create_batch(
    session: Session,
    task: Task,
    items: Sequence[ItemCreate],
    *,
    idempotency_key: str | None,
    job_items: int = JOB_ITEMS,
) -> tuple[Batch, bool]:
    """The new batch and True, or the batch an earlier request with the same Idempotency-Key made and False. Its
    items are labeled by ceil(n / ``job_items``) chunk jobs, each over the items ``in_chunk`` assigns it."""
    sha = request_sha(items)
    if idempotency_key is not None and (earlier := _earlier(session, task, idempotency_key, sha)) is not None:
        return earlier, False
    seen: set[str] = set()
    for index, item in enumerate(items):
        if item.id in seen:
            raise Invalid(f"item id {item.id!r} appears more than once in the batch", field=f"items.{index}.id")
        seen.add(item.id)
    batch = Batch(task_id=task.id, idempotency_key=idempotency_key, request_sha=sha, item_count=len(items))
    try:
        # A concurrent request with the same key may insert first; its row blocks ours until it commits, then
        # ours fails the unique constraint and the request answers with that batch.
        with session.begin_nested():
            session.add(batch)
    except IntegrityError:
        if idempotency_key is None or (earlier := _earlier(session, task, idempotency_key, sha)) is None:
            raise
        return earlier, False
    session.execute(
        insert(Item),
        [
            {"task_id": task.id, "batch_id": batch.id, "external_id": i.id, "text": i.text, "meta": i.meta}
            for i in items
        ],
    )
    chunks = max(1, -(-len(items) // job_items))
    sizes = [0] * chunks
    for item_id in session.scalars(select(Item.id).where(Item.batch_id == batch.id)):
        sizes[chunk_of(item_id, chunks)] += 1
    for chunk, size in enumerate(sizes):
        payload = {"chunk": chunk, "chunks": chunks}
        jobs.enqueue(session, kind="label_batch", task_id=task.id, batch_id=batch.id, payload=payload, total=size)
    return batch, True


def _earlier(session: Session, task: Task, idempotency_key: str, sha: str) -> Batch | None:
    """The batch an earlier request with this Idempotency-Key made; a Conflict if it had another body."""
    earlier = session.scalar(select(Batch).where(Batch.task_id == task.id, Batch.idempotency_key == idempotency_key))
    if earlier is not None and earlier.request_sha != sha:
        raise Conflict("this Idempotency-Key was used for a different request body", field="Idempotency-Key")
    return earlier


def get_batch(session: Session, task: Task, batch_id: int) -> Batch:
    batch = session.get(Batch, batch_id)
    if batch is None or batch.task_id != task.id:
        raise NotFound(f"no batch {batch_id} in task {task.name!r}", field="batch")
    return batch


def state_counts(session: Session, batch: Batch) -> dict[str, int]:
    rows = session.execute(select(Item.state, func.count()).where(Item.batch_id == batch.id).group_by(Item.state)).all()
    counts = dict.fromkeys(ITEM_STATES, 0)
    counts.update({state: int(n) for state, n in rows})
    return counts


def batch_jobs(session: Session, batch: Batch) -> list[Job]:
    """The batch's chunk jobs, in chunk order."""
    return list(session.scalars(select(Job).where(Job.batch_id == batch.id).order_by(Job.id)))


@dataclass(frozen=True)
class LabeledItem:
    item: Item
    label: Label | None
    prediction: Prediction | None
    decision: DecisionRecord | None


def labeled_items(session: Session, batch: Batch, *, after_id: int, limit: int) -> list[LabeledItem]:
    """Items of the batch with id > after_id, each with its final label, latest prediction and decision."""
    if limit < 1 or limit > 1000:
        raise Invalid("limit must be between 1 and 1000", field="limit")
    items = list(
        session.scalars(
            select(Item).where(Item.batch_id == batch.id, Item.id > after_id).order_by(Item.id).limit(limit)
        )
    )
    ids = [item.id for item in items]
    labels = latest_rows(session, Label, ids)
    predictions = latest_rows(session, Prediction, ids)
    decisions = latest_rows(session, DecisionRecord, ids)
    return [LabeledItem(item, labels.get(item.id), predictions.get(item.id), decisions.get(item.id)) for item in items]

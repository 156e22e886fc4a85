"""Batches: submit items (202 + batch URL, idempotent), read status and labels back with cursor paging."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response, status

from service.api.deps import MAX_ROW_ID, ClientDep, RowId, SessionDep, SettingsDep
from service.api.schemas.batches import BatchCreate, BatchPublic, LabelPage, LabelPublic
from service.errors import Invalid
from service.store import batches, tasks
from service.store.batches import LabeledItem
from service.tables import Batch, Task

router = APIRouter(prefix="/v1/tasks/{task}/batches", tags=["batches"])


def batch_public(request: Request, session: SessionDep, task: Task, batch: Batch) -> BatchPublic:
    counts = batches.state_counts(session, batch)
    jobs = batches.batch_jobs(session, batch)
    handled = batch.item_count - counts["queued"]
    url = str(request.url_for("read_batch", task=task.name, batch_id=batch.id))
    return BatchPublic(
        id=batch.id,
        task=task.name,
        url=url,
        labels_url=url + "/labels",
        item_count=batch.item_count,
        counts=counts,
        progress=handled / batch.item_count if batch.item_count else 1.0,
        done=counts["queued"] == 0,
        job_url=str(request.url_for("read_job", job_id=jobs[0].id)) if jobs else None,
        job_urls=[str(request.url_for("read_job", job_id=job.id)) for job in jobs],
        created_at=batch.created_at,
    )


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=BatchPublic)
def create_batch(
    task: str,
    body: BatchCreate,
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    _key: ClientDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> BatchPublic:
    if len(body.items) > settings.max_batch_items:
        raise Invalid(f"a batch holds at most {settings.max_batch_items} items; got {len(body.items)}", field="items")
    for index, item in enumerate(body.items):
        if len(item.text) > settings.max_text_chars:
            raise Invalid(
                f"text is {len(item.text)} characters; the limit is {settings.max_text_chars}",
                field=f"items.{index}.text",
            )
    task_row = tasks.get_task(session, task)
    for index, item in enumerate(body.items):
        if item.meta.get("gold_label") is not None:
            # A gold item's answer is compared with reviewers' answers: it must be one the task could store.
            tasks.read_label(task_row, item.meta["gold_label"], item.text, field=f"items.{index}.meta.gold_label")
    batch, created = batches.create_batch(
        session, task_row, body.items, idempotency_key=idempotency_key, job_items=settings.label_job_items
    )
    public = batch_public(request, session, task_row, batch)
    response.headers["Location"] = public.url
    if not created:
        response.status_code = status.HTTP_200_OK
    return public


@router.get("/{batch_id}", response_model=BatchPublic)
def read_batch(task: str, batch_id: RowId, request: Request, session: SessionDep, _key: ClientDep) -> BatchPublic:
    task_row = tasks.get_task(session, task)
    return batch_public(request, session, task_row, batches.get_batch(session, task_row, batch_id))


def label_public(task: Task, row: LabeledItem) -> LabelPublic:
    label, prediction, decision = row.label, row.prediction, row.decision
    return LabelPublic(
        item_id=row.item.external_id,
        label=tasks.public_label(task, label.label) if label else None,
        confidence=label.confidence if label else None,
        source=label.source if label else None,
        state=row.item.state,
        reasons=decision.reason_names if decision else [],
        prompt_version=prediction.template_sha if prediction and prediction.template_sha else None,
        model=prediction.model if prediction else None,
        truncated=row.item.truncated,
    )


@router.get("/{batch_id}/labels", response_model=LabelPage)
def read_labels(
    task: str,
    batch_id: RowId,
    session: SessionDep,
    _key: ClientDep,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> LabelPage:
    task_row = tasks.get_task(session, task)
    batch = batches.get_batch(session, task_row, batch_id)
    # ASCII digits only ("²".isdigit() is true) and within a row id, so int() and the driver cannot fail.
    if cursor is not None and not (re.fullmatch(r"[0-9]{1,10}", cursor) and int(cursor) <= MAX_ROW_ID):
        raise Invalid("cursor must be a next_cursor value from an earlier page", field="cursor")
    rows = batches.labeled_items(session, batch, after_id=int(cursor or 0), limit=limit)
    next_cursor = str(rows[-1].item.id) if len(rows) == limit else None
    return LabelPage(items=[label_public(task_row, row) for row in rows], next_cursor=next_cursor)

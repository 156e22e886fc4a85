"""Export rows (each item with its final label and provenance), and imports: rows whose id names an item of the
task already (its external id) update that item, the others come in as a new batch; the human labels a file
carries are written as human labels before the worker sees the items."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db import id_chunks
from service.errors import Invalid, MalformedJson
from service.formats import labelstudio, tabular
from service.formats.tabular import ImportedTask
from service.pipeline.kinds import Shown
from service.store import batches, review, tasks
from service.store.history import shown_blind
from service.store.items import latest_rows
from service.tables import (
    AdjudicationEntry,
    Batch,
    DecisionRecord,
    Item,
    Label,
    Prediction,
    ReviewEntry,
    ReviewVote,
    Task,
    utcnow,
)

FINAL_STATES = ("accepted", "resolved")
PAGE = 1000


def export_rows(session: Session, *, task: Task, final_only: bool = True) -> Iterator[dict[str, Any]]:
    """Items in id order with their final label (the latest label row), who or what gave it, the machine's latest
    prediction and routing reasons, and the reviewers' answers. `final_only` keeps accepted and resolved items."""
    after = 0
    while True:
        query = select(Item).where(Item.task_id == task.id, Item.id > after).order_by(Item.id).limit(PAGE)
        if final_only:
            query = query.where(Item.state.in_(FINAL_STATES))
        items = list(session.scalars(query))
        if not items:
            return
        ids = [item.id for item in items]
        labels = latest_rows(session, Label, ids)
        predictions = latest_rows(session, Prediction, ids)
        decisions = latest_rows(session, DecisionRecord, ids)
        votes: dict[int, dict[str, Shown]] = {}
        for vote in session.scalars(
            select(ReviewVote)
            .where(ReviewVote.item_id.in_(ids), ReviewVote.undone_at.is_(None))
            .order_by(ReviewVote.id)
        ):
            votes.setdefault(vote.item_id, {})[vote.reviewer] = tasks.public_label(task, vote.label)
        for item in items:
            label = labels.get(item.id) if item.state in FINAL_STATES else None
            prediction = predictions.get(item.id)
            decision = decisions.get(item.id)
            yield {
                "item_id": item.id,
                "external_id": item.external_id,
                "batch_id": item.batch_id,
                "text": item.text,
                "state": item.state,
                "label": tasks.public_label(task, label.label) if label else None,
                "source": label.source if label else None,
                "confidence": label.confidence if label else None,
                "reviewer": label.reviewer if label else None,
                "labeled_at": label.created_at.isoformat() if label else None,
                "model": prediction.model if prediction else None,
                "prompt_version": prediction.template_sha if prediction else None,
                "prediction": tasks.public_label(task, prediction.label) if prediction else None,
                "prediction_confidence": prediction.confidence if prediction else None,
                "reasons": decision.reason_names if decision else [],
                "blind": item.state == "review" and decision is not None and shown_blind(decision.reason_names),
                "votes": votes.get(item.id, {}),
                "meta": item.meta,
            }
        after = ids[-1]


MATCH_CHUNK = 500
"""External ids looked up per query."""


@dataclass(frozen=True)
class ImportResult:
    batch: Batch | None
    """The batch of the rows that named no item of the task; None when every row did."""
    created: bool
    """False when an earlier request with the same Idempotency-Key made the batch."""
    matched: int
    """Rows that named an item the task has."""
    labeled: int
    """Human labels written: on matched items (a label that differs from the item's latest human one) and on added
    ones."""
    added: int
    unchanged: int
    """Matched rows that changed nothing: no label, or the label the item has already."""


def import_tasks(
    session: Session, *, task: Task, imported: Sequence[ImportedTask], importer: str, idempotency_key: str | None
) -> ImportResult:
    """Rows whose id is the external id of an item of the task update it (the newest such item, when a client sent
    the same id in several batches): a label it does not have yet becomes its latest human label and takes it out
    of the review queue. Other rows come in as a new batch. Importing the same file again changes nothing.

    A label is recorded under its annotator (``ImportedTask.annotator``; the importing key when the file names
    none) at the time the file gives, with ``importer`` as the key that imported it. Labeled items are resolved at
    once, so the worker leaves them alone."""
    existing = _items_by_external_id(session, task, [t.item.id for t in imported])
    fresh = [t for t in imported if t.item.id not in existing]
    matched = [t for t in imported if t.item.id in existing]
    labeled_rows = [t for t in matched if t.label is not None]
    ids = [existing[t.item.id].id for t in labeled_rows]
    finals = latest_rows(session, Label, ids)
    changed = sum(
        _label(session, task, existing[t.item.id], t, importer=importer, final=finals.get(existing[t.item.id].id))
        for t in labeled_rows
    )
    batch, created = None, False
    added_labels = 0
    if fresh:
        batch, created = batches.create_batch(session, task, [t.item for t in fresh], idempotency_key=idempotency_key)
        labeled = {t.item.id: t for t in fresh if t.label is not None}
        if created and labeled:
            for item in session.scalars(
                select(Item).where(Item.batch_id == batch.id, Item.external_id.in_(list(labeled)))
            ):
                added_labels += _label(session, task, item, labeled[item.external_id], importer=importer, final=None)
    session.flush()
    return ImportResult(
        batch=batch,
        created=created,
        matched=len(matched),
        labeled=changed + added_labels,
        added=len(fresh) if created else 0,
        unchanged=len(matched) - changed,
    )


def _items_by_external_id(session: Session, task: Task, external_ids: Sequence[str]) -> dict[str, Item]:
    """The task's newest item for each external id that has one."""
    found: dict[str, Item] = {}
    wanted = list(dict.fromkeys(external_ids))
    for chunk in id_chunks(wanted, MATCH_CHUNK):
        for item in session.scalars(
            select(Item).where(Item.task_id == task.id, Item.external_id.in_(chunk)).order_by(Item.id)
        ):
            found[item.external_id] = item
    return found


def _label(session: Session, task: Task, item: Item, row: ImportedTask, *, importer: str, final: Label | None) -> bool:
    """Write the row's label (not None) as the item's latest human label unless a resolved item has it already as
    its ``final`` label (the latest label row; a resolved item's is human); the item leaves the review queue (or
    adjudication) resolved. Returns whether a label was written."""
    if row.label is None:
        raise ValueError("only a labeled row is written")
    if item.state == "resolved" and final is not None and final.label == row.label:
        return False
    reviewer = (row.annotator or importer)[:200]
    label = Label(
        item_id=item.id,
        task_id=task.id,
        label=row.label,
        source="human",
        reviewer=reviewer,
        imported_by=importer,
        created_at=row.labeled_at or utcnow(),
    )
    session.add(label)
    entry = session.get(ReviewEntry, item.id)
    if entry is not None:
        # The answer a reviewer would have given in the queue, so agreement and reviewer quality see the annotator.
        session.flush()
        reasons = review.latest_reasons(session, item.id)
        session.add(
            ReviewVote(
                item_id=item.id,
                task_id=task.id,
                reviewer=reviewer,
                label=row.label,
                kind=review.item_kind(item, reasons),
                required=1,
                priority=entry.priority,
                explanation=entry.explanation,
                label_id=label.id,
            )
        )
        session.delete(entry)
    adjudication = session.get(AdjudicationEntry, item.id)
    if adjudication is not None:
        session.delete(adjudication)
    item.state = "resolved"
    return True


def labelstudio_config(task: Task) -> str:
    """The Label Studio labeling config for the task's labels (formats.labelstudio.label_config)."""
    return labelstudio.label_config(tasks.task_def(task).labels, kind=tasks.kind_of(task))


FileFormat = Literal["jsonl", "csv", "parquet", "hf", "labelstudio"]


def export_file(session: Session, *, task: Task, fmt: FileFormat, path: Path) -> int:
    """Write the task's final labels (every item, for Label Studio) to `path`; returns the number of rows. For "hf"
    the path is a folder for datasets.load_from_disk."""
    rows = list(export_rows(session, task=task, final_only=fmt != "labelstudio"))
    if fmt == "labelstudio":
        path.write_text(json.dumps(labelstudio.to_labelstudio(rows)))
    else:
        tabular.write_file(rows, fmt, path)
    return len(rows)


def read_import(
    source: bytes | Path, fmt: FileFormat, *, task: Task, label_field: str | None = None
) -> list[ImportedTask]:
    """The items of an import (a path, or an upload's bytes), with the human labels it carries: Label Studio's
    annotations, or the ``label_field`` column of a table."""
    if fmt == "labelstudio":
        if label_field is not None:
            raise Invalid(
                "a Label Studio export carries its labels in its annotations: drop label_field", field="label_field"
            )
        text = source.read_text() if isinstance(source, Path) else source.decode("utf-8", errors="replace")
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MalformedJson(
                f"the file is not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}", field="body"
            ) from exc
        return labelstudio.from_labelstudio(
            payload,
            labels=tasks.label_names(task),
            kind=tasks.kind_of(task),
            read_label=partial(tasks.read_label, task),
        )
    return tabular.imported_from_rows(
        tabular.read_rows(source, fmt),
        label_field=label_field,
        labels=tasks.label_names(task),
        read_label=partial(tasks.read_label, task),
    )


def import_file(
    session: Session,
    *,
    task: Task,
    fmt: FileFormat,
    path: Path,
    importer: str,
    label_field: str | None = None,
    idempotency_key: str | None = None,
) -> ImportResult:
    """The items in the file (a folder for "hf"); see import_tasks."""
    imported = read_import(path, fmt, task=task, label_field=label_field)
    return import_tasks(session, task=task, imported=imported, importer=importer, idempotency_key=idempotency_key)

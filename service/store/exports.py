"""Export rows (each item with its final label and provenance) and imports that create a batch, with imported
human annotations written as human labels before the worker sees the items."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.errors import Invalid
from service.formats import labelstudio, tabular
from service.formats.tabular import ImportedTask
from service.store import batches, tasks
from service.store.items import latest_rows
from service.tables import Batch, DecisionRecord, Item, Label, Prediction, ReviewVote, Task

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
        votes: dict[int, dict[str, str]] = {}
        for vote in session.scalars(
            select(ReviewVote)
            .where(ReviewVote.item_id.in_(ids), ReviewVote.undone_at.is_(None))
            .order_by(ReviewVote.id)
        ):
            votes.setdefault(vote.item_id, {})[vote.reviewer] = vote.label
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
                "label": label.label if label else None,
                "source": label.source if label else None,
                "confidence": label.confidence if label else None,
                "reviewer": label.reviewer if label else None,
                "labeled_at": label.created_at.isoformat() if label else None,
                "model": prediction.model if prediction else None,
                "prompt_version": prediction.template_sha if prediction else None,
                "prediction": prediction.label if prediction else None,
                "prediction_confidence": prediction.confidence if prediction else None,
                "reasons": decision.reason_names if decision else [],
                "votes": votes.get(item.id, {}),
                "meta": item.meta,
            }
        after = ids[-1]


def import_tasks(
    session: Session, *, task: Task, imported: Sequence[ImportedTask], reviewer: str, idempotency_key: str | None
) -> tuple[Batch, bool, int]:
    """A new batch of the imported items (or the earlier one for a repeated Idempotency-Key) and how many came
    with a human label. Labeled items are resolved at once, so the worker leaves them alone."""
    batch, created = batches.create_batch(session, task, [t.item for t in imported], idempotency_key=idempotency_key)
    labeled = {t.item.id: t.label for t in imported if t.label is not None}
    if created and labeled:
        for item in session.scalars(select(Item).where(Item.batch_id == batch.id, Item.external_id.in_(list(labeled)))):
            session.add(
                Label(
                    item_id=item.id, task_id=task.id, label=labeled[item.external_id], source="human", reviewer=reviewer
                )
            )
            item.state = "resolved"
        session.flush()
    return batch, created, len(labeled)


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
    source: bytes | Path, fmt: FileFormat, *, labels: Sequence[str], label_field: str | None = None
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
            raise Invalid(f"the file is not JSON: {exc.msg}", field="body") from exc
        return labelstudio.from_labelstudio(payload, labels=labels)
    return tabular.imported_from_rows(tabular.read_rows(source, fmt), label_field=label_field, labels=labels)


def import_file(
    session: Session,
    *,
    task: Task,
    fmt: FileFormat,
    path: Path,
    reviewer: str,
    label_field: str | None = None,
    idempotency_key: str | None = None,
) -> tuple[Batch, bool, int]:
    """A batch of the items in the file (a folder for "hf"); see import_tasks."""
    imported = read_import(path, fmt, labels=tasks.label_names(task), label_field=label_field)
    return import_tasks(session, task=task, imported=imported, reviewer=reviewer, idempotency_key=idempotency_key)

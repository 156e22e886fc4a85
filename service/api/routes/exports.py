"""Export a task's labels (JSONL, CSV, Parquet, a zipped Hugging Face `datasets` folder, Label Studio JSON, with
the Label Studio labeling config) and import items from the same formats: rows that name an item of the task
update it, the others come in as a new batch."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status

from service.api.deps import ClientDep, SessionDep, SettingsDep
from service.api.routes.batches import batch_public
from service.api.schemas.batches import ImportPublic
from service.errors import Invalid
from service.formats import labelstudio, tabular
from service.store import exports, tasks

router = APIRouter(prefix="/v1/tasks/{task}", tags=["import and export"])

ExportFormat = Literal["jsonl", "csv", "parquet", "hf", "labelstudio"]
ImportFormat = Literal["jsonl", "csv", "parquet", "labelstudio"]
MEDIA_TYPES = {
    "jsonl": ("application/x-ndjson", "jsonl"),
    "csv": ("text/csv", "csv"),
    "parquet": ("application/vnd.apache.parquet", "parquet"),
    "hf": ("application/zip", "zip"),
    "labelstudio": ("application/json", "json"),
}


@router.get("/export", responses={200: {"content": {media: {} for media, _ in MEDIA_TYPES.values()}}})
def export(task: str, session: SessionDep, _key: ClientDep, format: ExportFormat = "jsonl") -> Response:
    """Final labels with provenance (accepted and resolved items); Label Studio JSON has every item, with the
    machine's prediction and the human annotation where there is one."""
    task_row = tasks.get_task(session, task)
    rows = list(exports.export_rows(session, task=task_row, final_only=format != "labelstudio"))
    if format == "labelstudio":
        body = json.dumps(labelstudio.to_labelstudio(rows)).encode()
    elif format == "hf":
        body = _zipped_dataset(rows)
    else:
        body = tabular.to_bytes(rows, format)
    media, suffix = MEDIA_TYPES[format]
    disposition = f'attachment; filename="{task_row.name}-labels.{suffix}"'
    return Response(body, media_type=media, headers={"Content-Disposition": disposition})


def _zipped_dataset(rows: list[dict[str, object]]) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "dataset"
        tabular.write_hf(rows, folder)
        archive = shutil.make_archive(str(Path(tmp) / "dataset"), "zip", root_dir=folder)
        return Path(archive).read_bytes()


async def _read_body(request: Request) -> bytes:
    return await request.body()


@router.get("/labelstudio/config", responses={200: {"content": {"application/xml": {}}}})
def labelstudio_config(task: str, session: SessionDep, _key: ClientDep) -> Response:
    """The Label Studio labeling config for the task: create the Label Studio project with it, then import the
    export (`format=labelstudio`) into it."""
    return Response(exports.labelstudio_config(tasks.get_task(session, task)), media_type="application/xml")


@router.post(
    "/import",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ImportPublic,
    responses={200: {"description": "Every row named an item of the task, or the Idempotency-Key was used."}},
)
def import_items(
    task: str,
    body: Annotated[bytes, Depends(_read_body)],
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    key: ClientDep,
    format: Annotated[ImportFormat, Query()],
    label_field: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> ImportPublic:
    """The file is the request body. Rows need a `text` column (Label Studio: data.text); `id` (Label Studio:
    data.external_id) names the item and other columns go to its meta. Label Studio annotations, or the
    `label_field` column of a table, become human labels (a value that is not a label of the task refuses the whole
    file), recorded under the Label Studio annotator (`labelstudio:<user>`) or this key, at the annotation's time.

    A row whose id is the external id of an item of the task updates that item: a label it does not have yet
    becomes its latest human label and takes it out of the review queue. The other rows are added as a new batch
    (202), labeled as usual where they carry no label. Importing the same file again changes nothing (200)."""
    task_row = tasks.get_task(session, task)
    imported = exports.read_import(body, format, task=task_row, label_field=label_field)
    if not imported:
        raise Invalid("the file has no items", field="body")
    if len(imported) > settings.max_batch_items:
        raise Invalid(f"a batch holds at most {settings.max_batch_items} items; got {len(imported)}", field="body")
    for index, row in enumerate(imported):
        if len(row.item.text) > settings.max_text_chars:
            raise Invalid(
                f"text is {len(row.item.text)} characters; the limit is {settings.max_text_chars}",
                field=f"rows.{index}.text",
            )
    result = exports.import_tasks(
        session, task=task_row, imported=imported, importer=key.name, idempotency_key=idempotency_key
    )
    batch = None if result.batch is None else batch_public(request, session, task_row, result.batch)
    if batch is not None:
        response.headers["Location"] = batch.url
    if not result.created:
        response.status_code = status.HTTP_200_OK
    return ImportPublic(
        matched=result.matched, labeled=result.labeled, added=result.added, unchanged=result.unchanged, batch=batch
    )

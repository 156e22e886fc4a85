"""Students: train (202 + job), list and compare versions, promote (gated; admin may force) and demote."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import FileResponse

from service import student_export
from service.api.deps import AdminDep, ClientDep, ReaderDep, SessionDep, SettingsDep
from service.api.schemas.students import PromotionCreate, StudentCreate, StudentJobPublic, StudentPublic
from service.errors import Conflict
from service.ports import StudentExportFormat
from service.store import jobs, students, tasks
from service.tables import StudentVersion

router = APIRouter(prefix="/v1/tasks/{task}/students", tags=["students"])


def _public(row: StudentVersion) -> StudentPublic:
    return StudentPublic(version=row.version, path=row.path, promoted=row.promoted, metrics=row.metrics)


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=StudentJobPublic)
def train(task: str, body: StudentCreate, request: Request, session: SessionDep, _key: ClientDep) -> StudentJobPublic:
    task_row = tasks.get_task(session, task)
    job = jobs.enqueue(session, kind="train_student", task_id=task_row.id, payload=body.model_dump())
    return StudentJobPublic(job_id=job.id, job_url=str(request.url_for("read_job", job_id=job.id)))


@router.get("", response_model=list[StudentPublic])
def list_versions(task: str, session: SessionDep, _key: ReaderDep) -> list[StudentPublic]:
    return [_public(row) for row in students.list_versions(session, task_id=tasks.get_task(session, task).id)]


@router.post("/{version}/promote", response_model=StudentPublic)
def promote(
    task: str,
    version: str,
    body: PromotionCreate,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    _key: AdminDep,
) -> StudentPublic:
    row = students.get(session, task=tasks.get_task(session, task), version=version)
    if not row.metrics.get("gate_passed") and not body.force:
        metric = str(row.metrics.get("gate_metric", "macro_f1"))
        raise Conflict(
            f"student {version} fails the promotion gate ({metric} {row.metrics['student'].get(metric, 0.0):.3f} vs "
            f"teacher {row.metrics['teacher'].get(metric, 0.0):.3f} - {settings.student.promotion_margin}); "
            "send force=true to override",
            field="version",
        )
    students.set_promoted(session, row=row, promoted_flag=True)
    request.app.state.promoted_cache.forget(task)
    return _public(row)


@router.post("/{version}/demote", response_model=StudentPublic)
def demote(task: str, version: str, request: Request, session: SessionDep, _key: AdminDep) -> StudentPublic:
    row = students.get(session, task=tasks.get_task(session, task), version=version)
    students.set_promoted(session, row=row, promoted_flag=False)
    request.app.state.promoted_cache.forget(task)
    return _public(row)


@router.get(
    "/{version}/download",
    response_class=FileResponse,
    responses={200: {"content": {"application/gzip": {}}, "description": "a tar.gz of the model folder"}},
)
def download(
    task: str,
    version: str,
    session: SessionDep,
    _key: ClientDep,
    format: Annotated[StudentExportFormat, Query()] = "hf",
) -> FileResponse:
    """The student as a standard model folder with its model card, in a tar.gz: `hf` loads in
    transformers.pipeline("text-classification"), `onnx` runs in onnxruntime. Made on the first request (seconds),
    then served from the student's folder."""
    task_row = tasks.get_task(session, task)
    row = students.get(session, task=task_row, version=version)
    path = student_export.archive(session, task_row, row, format)
    return FileResponse(path, media_type="application/gzip", filename=path.name)

"""Jobs: the long work behind a 202."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy.orm import Session

from service.api.deps import ReaderDep, RowId, SessionDep
from service.api.schemas.jobs import JobPublic
from service.errors import NotFound
from service.store import jobs, tasks

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.get("/{job_id}", response_model=JobPublic)
def read_job(job_id: RowId, session: SessionDep, key: ReaderDep) -> JobPublic:
    job = jobs.get_job(session, job_id)
    if key.project is not None and (job.task_id is None or _project(session, job.task_id) != key.project):
        raise NotFound(f"no job {job_id}", field="job")
    return JobPublic.model_validate(job, from_attributes=True)


def _project(session: Session, task_id: int) -> str:
    return tasks.get_task_by_id(session, task_id).project

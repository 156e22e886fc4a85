"""Jobs: the long work behind a 202."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.deps import ReaderDep, RowId, SessionDep
from service.api.schemas.jobs import JobPublic
from service.store import jobs

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.get("/{job_id}", response_model=JobPublic)
def read_job(job_id: RowId, session: SessionDep, _key: ReaderDep) -> JobPublic:
    return JobPublic.model_validate(jobs.get_job(session, job_id), from_attributes=True)

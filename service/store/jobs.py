"""Job rows and their leases. A worker claims a job for `lease_s` seconds and renews it as it goes; a crashed
worker's lease expires and another worker claims the job again. Claims use FOR UPDATE SKIP LOCKED on PostgreSQL;
on SQLite every transaction starts with BEGIN IMMEDIATE, which serializes claims."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from service.errors import NotFound
from service.tables import Job, utcnow


def enqueue(
    session: Session,
    *,
    kind: str,
    task_id: int | None = None,
    batch_id: int | None = None,
    payload: dict[str, Any] | None = None,
    total: int = 0,
    not_before: datetime | None = None,
) -> Job:
    job = Job(
        kind=kind,
        task_id=task_id,
        batch_id=batch_id,
        payload=payload or {},
        progress_total=total,
        not_before=not_before,
    )
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}", field="job")
    return job


def running_owner(session: Session, *, kind: str) -> str | None:
    """The worker holding a running job of this kind, if one does."""
    return session.scalar(select(Job.lease_owner).where(Job.kind == kind, Job.state == "running").limit(1))


def claim(session: Session, *, worker: str, lease_s: float, kinds: Sequence[str]) -> Job | None:
    """Take the oldest claimable job: queued, or running under an expired lease; None if there is none."""
    now = utcnow()
    query = (
        select(Job)
        .where(
            Job.kind.in_(kinds),
            or_(Job.state == "queued", and_(Job.state == "running", Job.lease_expires < now)),
            or_(Job.not_before.is_(None), Job.not_before <= now),
        )
        .order_by(Job.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    job = session.scalar(query)
    if job is None:
        return None
    job.state = "running"
    job.lease_owner = worker
    job.lease_expires = now + timedelta(seconds=lease_s)
    job.attempts += 1
    job.updated_at = now
    return job


def renew(
    session: Session,
    job_id: int,
    *,
    worker: str,
    lease_s: float,
    done: int,
    message: str = "",
    total: int | None = None,
) -> bool:
    """Extend the lease and record progress; False when the lease was lost to another worker."""
    now = utcnow()
    values: dict[str, Any] = {
        "lease_expires": now + timedelta(seconds=lease_s),
        "progress_done": done,
        "message": message,
        "updated_at": now,
    }
    if total is not None:
        values["progress_total"] = total
    result = session.execute(
        update(Job).where(Job.id == job_id, Job.lease_owner == worker, Job.state == "running").values(**values)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def finish(session: Session, job_id: int, *, worker: str, result: Mapping[str, object] | None = None) -> bool:
    return _end(session, job_id, worker=worker, state="done", result=dict(result or {}), error=None)


def fail(session: Session, job_id: int, *, worker: str, error: str) -> bool:
    return _end(session, job_id, worker=worker, state="failed", result={}, error=error)


def postpone(session: Session, job_id: int, *, worker: str, until: datetime, message: str) -> bool:
    """Give the job back to the queue, not to be claimed before `until` (waiting on reviews or on the teacher)."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.lease_owner == worker, Job.state == "running")
        .values(
            state="queued",
            lease_owner=None,
            lease_expires=None,
            not_before=until,
            message=message,
            updated_at=utcnow(),
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _end(session: Session, job_id: int, *, worker: str, state: str, result: dict[str, Any], error: str | None) -> bool:
    values: dict[str, Any] = {
        "state": state,
        "lease_owner": None,
        "lease_expires": None,
        "error": error,
        "updated_at": utcnow(),
        "message": "",
    }
    if result:
        values["result"] = result
    outcome = session.execute(
        update(Job).where(Job.id == job_id, Job.lease_owner == worker, Job.state == "running").values(**values)
    )
    return bool(outcome.rowcount)  # type: ignore[attr-defined]


def forgive_attempt(session: Session, job_id: int) -> None:
    """Do not count the last attempt towards the job's limit (it failed for a reason outside the job)."""
    session.execute(update(Job).where(Job.id == job_id, Job.attempts > 0).values(attempts=Job.attempts - 1))

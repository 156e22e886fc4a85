"""The worker loop: claim a job under a lease, run its handler, record the outcome."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import timedelta

from sqlalchemy.exc import OperationalError

from service.db import transaction
from service.jobs import metrics
from service.jobs.consistency_check import run_consistency_check
from service.jobs.context import WorkerContext
from service.jobs.label_batch import run_label_batch
from service.jobs.rerank_queue import run_rerank_queue
from service.jobs.train_student import run_train_student
from service.ports import TeacherUnavailable
from service.store import consistency, review
from service.store import jobs as job_store
from service.tables import Job, utcnow

log = logging.getLogger("understudy.worker")

Handler = Callable[[WorkerContext, Job], Mapping[str, object] | None]
HANDLERS: dict[str, Handler] = {
    "label_batch": run_label_batch,
    "train_student": run_train_student,
    consistency.CHECK_JOB: run_consistency_check,
    review.RERANK_JOB: run_rerank_queue,
}
MAX_ATTEMPTS = 5
TEACHER_RETRY_S = 15.0


def run_once(ctx: WorkerContext) -> bool:
    """Claim and run one job; False when there was nothing to claim."""
    with transaction(ctx.sessions) as session:
        job = job_store.claim(session, worker=ctx.worker_id, lease_s=ctx.settings.job_lease_s, kinds=list(HANDLERS))
    if job is None:
        return False
    log.info("job %s (%s) claimed by %s, attempt %s", job.id, job.kind, ctx.worker_id, job.attempts)
    try:
        result = HANDLERS[job.kind](ctx, job)
    except TeacherUnavailable as exc:
        # The teacher being down is not the job's fault: the items wait, none fail, and the job comes back.
        log.warning("job %s waits for the teacher: %s", job.id, exc)
        with transaction(ctx.sessions) as session:
            until = utcnow() + timedelta(seconds=TEACHER_RETRY_S)
            job_store.postpone(
                session, job.id, worker=ctx.worker_id, until=until, message=f"teacher unavailable: {exc}"
            )
            job_store.forgive_attempt(session, job.id)
        metrics.JOBS_ENDED.labels(kind=job.kind, outcome="postponed").inc()
        return True
    except Exception as exc:
        log.exception("job %s failed on attempt %s", job.id, job.attempts)
        with transaction(ctx.sessions) as session:
            message = f"{type(exc).__name__}: {exc}"
            failed = job.attempts >= MAX_ATTEMPTS
            if failed:
                job_store.fail(session, job.id, worker=ctx.worker_id, error=message)
            else:
                backoff = timedelta(seconds=min(60.0, 2.0**job.attempts))
                job_store.postpone(session, job.id, worker=ctx.worker_id, until=utcnow() + backoff, message=message)
        metrics.JOBS_ENDED.labels(kind=job.kind, outcome="failed" if failed else "retried").inc()
        return True
    if result is None:
        metrics.JOBS_ENDED.labels(kind=job.kind, outcome="postponed").inc()
    else:
        with transaction(ctx.sessions) as session:
            job_store.finish(session, job.id, worker=ctx.worker_id, result=result)
        metrics.JOBS_ENDED.labels(kind=job.kind, outcome="done").inc()
        log.info("job %s done", job.id)
    return True


DATABASE_RETRY_MAX_S = 30.0


def run(ctx: WorkerContext, *, stop: threading.Event, exit_when_idle: bool = False) -> None:
    """Run jobs until stopped. A database that is down (restarting, full) stops nothing: the worker waits and
    tries again; a chunk it could not write is still queued, and its job comes back when the lease ends."""
    outage = 0
    while not stop.is_set():
        try:
            claimed = run_once(ctx)
        except OperationalError as exc:
            outage += 1
            wait = min(DATABASE_RETRY_MAX_S, ctx.settings.worker_poll_s * 2**outage)
            log.warning("database unavailable (%s); retrying in %.1f s", str(exc).splitlines()[0], wait)
            stop.wait(wait)
            continue
        outage = 0
        if not claimed:
            if exit_when_idle:
                return
            stop.wait(ctx.settings.worker_poll_s)

"""The consistency_check job: a check too large for a request (see store.consistency.INLINE_COMPARISONS). It reads
its snapshot in one short transaction, compares outside any (on SQLite every transaction holds the write lock, and
reviewers keep answering while it runs), and records the pairs in another."""

from __future__ import annotations

import time

from service.db import transaction
from service.jobs.context import WorkerContext
from service.store import consistency, tasks
from service.store import jobs as job_store
from service.tables import Job


def run_consistency_check(ctx: WorkerContext, job: Job) -> dict[str, object]:
    started = time.perf_counter()
    min_cosine = float(job.payload["min_cosine"])
    with transaction(ctx.sessions) as session:
        snap = consistency.snapshot(
            session, task=tasks.get_task_by_id(session, job.task_id or 0), min_cosine=min_cosine
        )

    def progress(done: int, total: int) -> None:
        with transaction(ctx.sessions) as session:
            job_store.renew(
                session, job.id, worker=ctx.worker_id, lease_s=ctx.settings.job_lease_s, done=done, total=total
            )

    pairs = consistency.find(snap, progress)
    with transaction(ctx.sessions) as session:
        result = consistency.record(session, snap=snap, pairs=pairs)
    return {**vars(result), "seconds": round(time.perf_counter() - started, 3)}

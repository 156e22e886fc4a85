"""The rerank_queue job: rank the items waiting for review again by the labeler refitted on every human label so
far (task_policy.rank_queue). Queued after every RERANK_EVERY human labels (store.review). It reads in one short
transaction, fits and scores outside any (on SQLite every transaction holds the write lock, and reviewers keep
answering), and writes the new priorities in another."""

from __future__ import annotations

import time

from service.db import transaction
from service.jobs.context import WorkerContext
from service.store import history, items, review, tasks
from service.tables import Job
from service.task_policy import rank_queue


def run_rerank_queue(ctx: WorkerContext, job: Job) -> dict[str, object]:
    started = time.perf_counter()
    with transaction(ctx.sessions) as session:
        task = tasks.get_task_by_id(session, job.task_id or 0)
        reviews = history.uniform_reviews(session, task_id=task.id)
        pool = ctx.pool(session, task.id)
        queued = items.rescore_candidates(session, task_id=task.id)
    ranked = rank_queue(task, reviews=reviews, pool=pool, queued=queued)
    with transaction(ctx.sessions) as session:
        changed = review.reprioritize(session, task_id=task.id, ranked=ranked)
    return {"ranked": changed, "seconds": round(time.perf_counter() - started, 3)}

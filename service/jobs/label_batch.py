"""The label_batch job: score the queued items of one chunk of a batch, step by step, and route each to accept or
review (items imported with a human label are only embedded, to join the labeled pool). A batch has one such job
per ``batches.JOB_ITEMS`` items, claimed by any worker, so several workers share a large batch.

Each chunk is read in one short transaction, scored outside any transaction, and written in one transaction that
only touches items still queued, so a retried job (after a crash or a lost lease) labels every item exactly once.
During cold start (no certified threshold yet) items are drawn at random for review, at most `seed_reviews`
waiting at a time, and the job waits for reviewers instead of flooding the queue.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TypedDict

from sqlalchemy.orm import Session

from service import task_policy
from service.db import transaction
from service.jobs import metrics
from service.jobs.context import WorkerContext
from service.jobs.scoring import ChunkPlan, score_chunk
from service.jobs.span_scoring import score_spans_chunk
from service.pipeline.cascade import escalates, student_policy
from service.pipeline.cost import Stage, StageUsage
from service.pipeline.policy import Policy
from service.store import history, items, review, students, tasks, usage
from service.store import jobs as job_store
from service.tables import Job, Task, utcnow
from service.task_policy import TaskLabeler

COLD_START_WAIT_S = 2.0


class LabelBatchResult(TypedDict):
    """A finished label_batch job's result: what the teacher and the student scored in this job, and how fast."""

    teacher_items_per_s: float | None
    student_items_per_s: float | None
    teacher_items: int
    student_items: int


def _plan(session: Session, ctx: WorkerContext, job: Job) -> ChunkPlan | str | None:
    """The next chunk to score; a message when the job must wait for reviewers; None when the batch is done."""
    task = tasks.get_task_by_id(session, job.task_id or 0)
    if task.kind == "spans":
        return _spans_plan(session, ctx, job, task)
    min_reviews = ctx.settings.policy.min_reviews
    # One read of the uniform reviews serves the look, the policy and the stopping rule.
    uniform = history.uniform_reviews(session, task_id=task.id)
    pool = ctx.pool(session, task.id)
    looked = task_policy.run_look(session, task, reviews=uniform, pool=pool, min_reviews=min_reviews)
    applied = task_policy.applied(session, task, reviews=uniform, min_reviews=min_reviews)
    if looked is not None and looked.threshold is not None:
        task_policy.rescore_queue(session, task, applied)
    policy = applied.policy
    batch_id = job.batch_id or 0
    chunk = items.Chunk.of(job)
    limit = ctx.settings.teacher.chunk_size
    if policy.threshold is None and policy.uniform_draws:
        # Only draws count: items below the candidate's slice floor wait by priority and hold no draw back.
        room = ctx.settings.policy.seed_reviews - review.waiting_draws(session, task=task)
        if not items.count_in_batch(session, batch_id=batch_id, queued=True, chunk=chunk):
            return None
        if room <= 0:
            reviews = review.human_count(session, task_id=task.id)
            return f"cold start: waiting for reviewers ({reviews} reviews so far, no certified threshold yet)"
        # A uniform random draw keeps the cold-start reviews a valid sample for certifying a threshold.
        queued = items.next_queued(session, batch_id=batch_id, limit=min(room, limit), at_random=True, chunk=chunk)
    else:
        queued = items.next_queued(session, batch_id=batch_id, limit=limit, at_random=False, chunk=chunk)
    return _chunk(session, task, queued, policy, applied.labeler)


def _spans_plan(session: Session, ctx: WorkerContext, job: Job, task: Task) -> ChunkPlan | None:
    """The next chunk of a spans task, in order: no threshold of the teacher's is certified for span sets (see
    jobs/span_scoring.py), so no uniform draws are held back for one."""
    policy = task_policy.span_limits(session, task, min_reviews=ctx.settings.policy.min_reviews)
    queued = items.next_queued(
        session,
        batch_id=job.batch_id or 0,
        limit=ctx.settings.teacher.chunk_size,
        at_random=False,
        chunk=items.Chunk.of(job),
    )
    return _chunk(session, task, queued, policy, TaskLabeler.none())


def _chunk(
    session: Session, task: Task, queued: Sequence[items.QueuedItem], policy: Policy, labeler: TaskLabeler
) -> ChunkPlan | None:
    """The chunk of ``queued`` items under ``policy``, with the promoted student if any; None when there are none."""
    if not queued:
        return None
    student = students.promoted(session, task_id=task.id)
    return ChunkPlan(
        task_id=task.id,
        item_ids=[row.item_id for row in queued],
        texts=[row.text for row in queued],
        policy=policy,
        student_path=student.path if student else None,
        student_policy=student_policy(policy, student.metrics) if student else None,
        labeler=labeler,
        escalate_to_teacher=escalates(tasks.kind_of(task), student.metrics if student else None),
    )


def run_label_batch(ctx: WorkerContext, job: Job) -> LabelBatchResult | None:
    """Returns the job's result when the batch is done, None when the job was postponed or lost its lease."""
    if not _embed_imported_labels(ctx, job):
        return None
    while True:
        with transaction(ctx.sessions) as session:
            plan = _plan(session, ctx, job)
            if isinstance(plan, str):
                job_store.postpone(
                    session,
                    job.id,
                    worker=ctx.worker_id,
                    until=utcnow() + timedelta(seconds=COLD_START_WAIT_S),
                    message=plan,
                )
                return None
            if plan is None:
                return _result(usage.totals(session, job_id=job.id))
            task_def = tasks.task_def(tasks.get_task_by_id(session, plan.task_id))
            pool = ctx.pool(session, plan.task_id)
        started = time.perf_counter()
        score = score_spans_chunk if task_def.kind == "spans" else score_chunk
        outcomes = score(ctx, task_def, plan, pool)
        spent = ctx.take_usage()
        with transaction(ctx.sessions) as session:
            written = [o for o in outcomes if items.record_outcome(session, task_id=plan.task_id, outcome=o)]
            usage.record(session, task_id=plan.task_id, job_id=job.id, rows=spent)
            still_ours = _renew(session, ctx, job, f"{len(outcomes)} items in {time.perf_counter() - started:.1f} s")
        metrics.record_chunk(task_def.name, written)
        metrics.record_usage(ctx, spent)
        if not still_ours:
            return None


def _embed_imported_labels(ctx: WorkerContext, job: Job) -> bool:
    """Embed the batch's items that came with human labels, so that they join the labeled pool (few-shot
    examples, neighbours, the probe) like reviewed items. False when the job lost its lease."""
    batch_id = job.batch_id or 0
    while True:
        with transaction(ctx.sessions) as session:
            waiting = items.unembedded_labeled(
                session, batch_id=batch_id, limit=ctx.settings.teacher.chunk_size, chunk=items.Chunk.of(job)
            )
        if not waiting:
            return True
        with ctx.metered("embedder", len(waiting)):
            embeddings = ctx.embedder.embed([text for _, text in waiting])
        spent = ctx.take_usage()
        with transaction(ctx.sessions) as session:
            items.store_embeddings(
                session, {item_id: row for (item_id, _), row in zip(waiting, embeddings, strict=True)}
            )
            usage.record(session, task_id=job.task_id or 0, job_id=job.id, rows=spent)
            still_ours = _renew(session, ctx, job, f"embedded {len(waiting)} imported labels")
        metrics.record_usage(ctx, spent)
        if not still_ours:
            return False


def _renew(session: Session, ctx: WorkerContext, job: Job, message: str) -> bool:
    """Extend the job's lease with the batch's progress; False when another worker holds it now."""
    return job_store.renew(
        session,
        job.id,
        worker=ctx.worker_id,
        lease_s=ctx.settings.job_lease_s,
        done=items.count_in_batch(session, batch_id=job.batch_id or 0, queued=False, chunk=items.Chunk.of(job)),
        message=message,
    )


def _result(spent: list[StageUsage]) -> LabelBatchResult:
    def speed(stage: Stage) -> tuple[int, float | None]:
        rows = [row for row in spent if row.stage == stage]
        scored, seconds = sum(row.items for row in rows), sum(row.wall_s for row in rows)
        return scored, scored / seconds if seconds > 0 else None

    (teacher_items, teacher_per_s), (student_items, student_per_s) = speed("teacher"), speed("student")
    return LabelBatchResult(
        teacher_items_per_s=teacher_per_s,
        student_items_per_s=student_per_s,
        teacher_items=teacher_items,
        student_items=student_items,
    )

"""The label_batch job: score a batch's queued items chunk by chunk and route each to accept or review.

Each chunk is read in one short transaction, scored outside any transaction, and written in one transaction that
only touches items still queued, so a retried job (after a crash or a lost lease) labels every item exactly once.
During cold start (no certified threshold yet) items are drawn at random for review, at most `seed_reviews`
waiting at a time, and the job waits for reviewers instead of flooding the queue.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import numpy as np
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from service.db import transaction
from service.jobs.context import WorkerContext
from service.jobs.scoring import ChunkPlan, ChunkResult, score_chunk
from service.pipeline.cascade import student_policy
from service.pipeline.confidence import fit_calibration
from service.store import history, review, students, tasks
from service.store import jobs as job_store
from service.tables import Decision, Item, Job, Label, Prediction, Task, utcnow

COLD_START_WAIT_S = 2.0


def _plan(session: Session, ctx: WorkerContext, job: Job) -> ChunkPlan | str | None:
    """The next chunk to score; a message when the job must wait for reviewers; None when the batch is done."""
    task = tasks.get_task_by_id(session, job.task_id or 0)
    policy = history.fit_task_policy(session, task, min_reviews=ctx.settings.policy.min_reviews)
    limit = ctx.settings.teacher.chunk_size
    queued = select(Item.id, Item.text).where(Item.batch_id == job.batch_id, Item.state == "queued")
    if policy.threshold is None:
        room = ctx.settings.policy.seed_reviews - review.waiting_count(session, task=task)
        remaining = session.scalar(
            select(func.count()).select_from(Item).where(Item.batch_id == job.batch_id, Item.state == "queued")
        )
        if not remaining:
            return None
        if room <= 0:
            reviews = review.human_count(session, task_id=task.id)
            return f"cold start: waiting for reviewers ({reviews} reviews so far, no certified threshold yet)"
        # A uniform random draw keeps the cold-start reviews a valid sample for certifying a threshold.
        rows = session.execute(queued.order_by(func.random()).limit(min(room, limit))).all()
    else:
        rows = session.execute(queued.order_by(Item.id).limit(limit)).all()
    if not rows:
        return None
    student = students.promoted(session, task_id=task.id)
    names = tuple(tasks.label_names(task))
    raw, reviewed = history.calibration_data(session, task_id=task.id, labels=names)
    calibration = (
        fit_calibration(logits_or_logprobs=np.log(np.clip(raw, 1e-300, None)), labels=reviewed)
        if len(reviewed) >= ctx.settings.policy.min_reviews
        else None
    )
    return ChunkPlan(
        task_id=task.id,
        item_ids=[int(row[0]) for row in rows],
        texts=[str(row[1]) for row in rows],
        policy=policy,
        student_path=student.path if student else None,
        student_policy=student_policy(policy, student.metrics) if student else None,
        calibration=calibration,
    )


def run_label_batch(ctx: WorkerContext, job: Job) -> dict[str, Any] | None:
    """Returns the job's result when the batch is done, None when the job was postponed or lost its lease."""
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
                return _result(ctx)
            task = tasks.get_task_by_id(session, plan.task_id)
            task_def = tasks.task_def(task)
            pool = ctx.pool(session, plan.task_id)
        started = time.perf_counter()
        results = score_chunk(ctx, task_def, plan, pool)
        with transaction(ctx.sessions) as session:
            for result in results:
                _write(session, task, result)
            done = session.scalar(
                select(func.count()).select_from(Item).where(Item.batch_id == job.batch_id, Item.state != "queued")
            )
            still_ours = job_store.renew(
                session,
                job.id,
                worker=ctx.worker_id,
                lease_s=ctx.settings.job_lease_s,
                done=int(done or 0),
                message=f"{len(results)} items in {time.perf_counter() - started:.1f} s",
            )
        if not still_ours:
            return None


def _write(session: Session, task: Task, result: ChunkResult) -> None:
    claimed = session.execute(
        update(Item)
        .where(Item.id == result.item_id, Item.state == "queued")
        .values(
            state="accepted" if result.decision.accept else "review",
            embedding=np.asarray(result.embedding, dtype=np.float32).tobytes(),
            truncated=result.truncated,
        )
    )
    if not claimed.rowcount:  # type: ignore[attr-defined]
        return  # another worker wrote this item first
    prediction = Prediction(
        item_id=result.item_id,
        source=result.source,
        model=result.model,
        template_sha=result.template_sha,
        prompt_sha=result.prompt_sha,
        raw_probs=list(result.raw_probs),
        probs=list(result.probs),
        label=result.label,
        confidence=result.confidence,
    )
    session.add(prediction)
    session.flush()
    session.add(
        Decision(
            item_id=result.item_id,
            prediction_id=prediction.id,
            accept=result.decision.accept,
            reasons=list(result.decision.reasons),
            signals=result.signals,
        )
    )
    if result.decision.accept:
        session.add(
            Label(
                item_id=result.item_id,
                task_id=task.id,
                label=result.label,
                source=result.source,
                confidence=result.confidence,
                prediction_id=prediction.id,
            )
        )
    else:
        item = session.get_one(Item, result.item_id)
        review.enqueue(session, item=item, priority=result.priority, explanation=result.priority_explanation)


def _result(ctx: WorkerContext) -> dict[str, Any]:
    return {
        "teacher_items_per_s": ctx.teacher_speed.per_second,
        "student_items_per_s": ctx.student_speed.per_second,
        "teacher_items": ctx.teacher_speed.items,
        "student_items": ctx.student_speed.items,
    }

"""Bulk labeling of a file through the cascade (`understudy label FILE`): streamed, resumable, with progress.

The output JSONL is its own checkpoint: each input row gives exactly one output line, written and flushed chunk by
chunk, so a restarted run counts the complete lines, drops a torn last line, and skips that many input rows.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sqlalchemy.orm import Session

from service import task_policy
from service.db import transaction
from service.errors import Conflict, Invalid
from service.formats import tabular
from service.jobs import metrics
from service.jobs.context import WorkerContext
from service.jobs.scoring import ChunkPlan, score_chunk
from service.jobs.span_scoring import score_spans_chunk
from service.pipeline import kinds
from service.pipeline.cascade import escalates, student_policy
from service.pipeline.policy import Policy
from service.pipeline.pool import LabeledPool
from service.ports import TaskDef
from service.store import history, students, tasks, usage
from service.tables import StudentVersion, Task
from service.task_policy import TaskLabeler

CHUNK_ROWS = 256

Record = dict[str, Any]
"""One output line: id, label, confidence, source, accepted, reasons, model, prompt_version, truncated."""


def completed_rows(out: Path) -> int:
    """Complete lines already in `out`; a torn last line (a kill mid-write) is cut off."""
    if not out.exists():
        return 0
    data = out.read_bytes()
    complete = data.rfind(b"\n") + 1
    if complete < len(data):
        with out.open("r+b") as handle:
            handle.truncate(complete)
    return data[:complete].count(b"\n")


def read_rows(path: Path, text_field: str, id_field: str | None, skip: int) -> Iterator[tuple[str, str]]:
    for number, row in enumerate(itertools.islice(tabular.iter_rows(path, tabular.format_of(path)), skip, None), skip):
        if text_field not in row:
            raise Invalid(f"{path}: row {number + 1} has no field {text_field!r}", field="text_field")
        text = row[text_field]
        if not isinstance(text, str) or not text.strip():
            raise Invalid(f"{path}: row {number + 1}: {text_field!r} must be a non-empty string", field="text_field")
        yield (str(row[id_field]) if id_field and id_field in row else str(number)), text


@dataclass(frozen=True)
class BulkPlan:
    """What every chunk of a bulk run is labeled with: the task's state when the run starts."""

    task_id: int
    task_def: TaskDef
    policy: Policy
    labeler: TaskLabeler
    student_path: str | None
    student_policy: Policy | None
    escalate_to_teacher: bool
    pool: LabeledPool


def plan_bulk(ctx: WorkerContext, *, task_name: str, escalate_to_teacher: bool) -> BulkPlan:
    """The task's policy, labeler, promoted student and pool, read once. With ``escalate_to_teacher`` false the
    teacher is never called: rows the promoted student is unsure of keep its label, not accepted, with the reason
    student_unsure (a fast first pass; those rows can go to the teacher later)."""
    with transaction(ctx.sessions) as session:
        task, student = _task_and_student(session, task_name, escalate_to_teacher)
        min_reviews = ctx.settings.policy.min_reviews
        if task.kind == "spans":
            policy, labeler = task_policy.span_limits(session, task, min_reviews=min_reviews), TaskLabeler.none()
        else:
            reviews = history.uniform_reviews(session, task_id=task.id)
            applied = task_policy.applied(session, task, reviews=reviews, min_reviews=min_reviews)
            policy, labeler = applied.policy, applied.labeler
        return BulkPlan(
            task_id=task.id,
            task_def=tasks.task_def(task),
            policy=policy,
            labeler=labeler,
            student_path=student.path if student else None,
            student_policy=student_policy(policy, student.metrics) if student else None,
            escalate_to_teacher=escalate_to_teacher
            and escalates(tasks.kind_of(task), student.metrics if student else None),
            pool=ctx.pool(session, task.id),
        )


def _task_and_student(
    session: Session, task_name: str, escalate_to_teacher: bool
) -> tuple[Task, StudentVersion | None]:
    """The task and its promoted student; a Conflict when the run needs a student and there is none."""
    task = tasks.get_task(session, task_name)
    student = students.promoted(session, task_id=task.id)
    if student is None and not escalate_to_teacher:
        raise Conflict(f"task {task_name!r} has no promoted student to label without the teacher", field="task")
    return task, student


def label_chunk(ctx: WorkerContext, plan: BulkPlan, rows: list[int], chunk: list[tuple[str, str]]) -> list[Record]:
    """Output records of one chunk: ``rows`` are the input row numbers (the items' audit draws), ``chunk`` the
    (id, text) pairs. The model time it took is written to the task's usage."""
    chunk_plan = ChunkPlan(
        task_id=plan.task_id,
        item_ids=rows,
        texts=[text for _, text in chunk],
        policy=plan.policy,
        student_path=plan.student_path,
        student_policy=plan.student_policy,
        escalate_to_teacher=plan.escalate_to_teacher,
        labeler=plan.labeler,
    )
    score = score_spans_chunk if plan.task_def.kind == "spans" else score_chunk
    outcomes = score(ctx, plan.task_def, chunk_plan, plan.pool)
    spent = ctx.take_usage()
    with transaction(ctx.sessions) as session:
        usage.record(session, task_id=plan.task_id, job_id=None, rows=spent)
    metrics.record_usage(ctx, spent)
    return [
        {
            "id": row_id,
            "label": kinds.shown(plan.task_def.kind, plan.task_def.label_names, result.label),
            "confidence": round(result.confidence, 6),
            "source": result.score.source,
            "accepted": result.decision.accept,
            "reasons": list(result.decision.reasons),
            "model": result.score.model,
            "prompt_version": result.score.template_sha or None,
            "truncated": result.score.truncated,
        }
        for (row_id, _), result in zip(chunk, outcomes, strict=True)
    ]


def _resume(out: Path, progress: Callable[[int], object]) -> dict[str, int]:
    """Counts for a run that starts after the complete lines already in ``out`` (reported as progress)."""
    done = completed_rows(out)
    progress(done)
    return {"resumed_from": done, "student": 0, "teacher": 0, "review": 0}


def count(counts: dict[str, int], *, source: str, accepted: bool) -> None:
    counts[source] += 1
    counts["review"] += not accepted


@dataclass(frozen=True)
class BulkJob:
    """One `understudy label` run: which task labels which file into which output."""

    task_name: str
    path: Path
    out: Path
    text_field: str
    id_field: str | None
    escalate_to_teacher: bool


def label_file(
    ctx: WorkerContext,
    *,
    task_name: str,
    path: Path,
    out: Path,
    text_field: str,
    id_field: str | None,
    progress: Callable[[int], object],
    escalate_to_teacher: bool = True,
    engine: Literal["local", "ray"] = "local",
    actors: int = 2,
    address: str | None = None,
    rows_in_file: int | None = None,
) -> dict[str, int]:
    """Label every row of `path` into `out`; returns counts per source and routing. Resumes where `out` stops.
    ``engine`` "ray" labels on Ray Data (see bulk_ray) with ``actors`` actors, on the cluster at ``address``;
    it needs the file's row count, read from the file unless the caller has it (``rows_in_file``)."""
    if engine == "ray":
        from service.jobs.bulk_ray import label_on_ray

        # The actors plan for themselves; here only what would refuse the run, before a cluster starts.
        with transaction(ctx.sessions) as session:
            _task_and_student(session, task_name, escalate_to_teacher)
        job = BulkJob(task_name, path, out, text_field, id_field, escalate_to_teacher)
        counts = _resume(out, progress)
        total = tabular.count_rows(path) if rows_in_file is None else rows_in_file
        return label_on_ray(ctx, job, counts, progress, rows_in_file=total, actors=actors, address=address)
    plan = plan_bulk(ctx, task_name=task_name, escalate_to_teacher=escalate_to_teacher)
    counts = _resume(out, progress)
    done = counts["resumed_from"]
    rows = read_rows(path, text_field, id_field, done)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a", encoding="utf-8") as handle:
        while chunk := list(itertools.islice(rows, CHUNK_ROWS)):
            for record in label_chunk(ctx, plan, list(range(done, done + len(chunk))), chunk):
                count(counts, source=record["source"], accepted=record["accepted"])
                handle.write(json.dumps(record) + "\n")
            handle.flush()
            done += len(chunk)
            progress(done)
    counts["rows"] = done
    return counts

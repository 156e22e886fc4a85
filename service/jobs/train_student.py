"""The train_student job: distil the accepted labels into a LoRA student, evaluate it beside the teacher on held-out
human gold, fit its cascade threshold and register it under adapters/<task>/<version>/."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TypedDict

from service.db import transaction
from service.jobs.context import WorkerContext
from service.pipeline import kinds
from service.pipeline.cascade import UNCERTIFIED_THRESHOLD, fit_student_threshold, gate_f1, promotion_gate
from service.pipeline.metrics import ClassificationReport, confidence_calibration_error, expected_calibration_error
from service.pipeline.train_plan import plan_training
from service.ports import FloatArray, TaskDef, TrainConfig
from service.store import history, students, tasks, usage
from service.store import jobs as job_store
from service.store.history import TrainingRow
from service.tables import Job

PROGRESS_EVERY_S = 2.0

Progress = Callable[[int, int], None]
"""Called with (steps done, steps in all) as training runs."""


class StudentReport(ClassificationReport):
    ece: float
    """Expected calibration error of the student's probabilities on the gold set."""


class StudentMetrics(TypedDict):
    """Stored with a student version: its gold report beside the teacher's, its cascade threshold and the gate."""

    student: StudentReport
    teacher: ClassificationReport
    threshold: float
    """Lowest student confidence it labels alone (above 1 when none was certified: it labels nothing alone)."""
    threshold_error_bound: float | None
    gold_examples: int
    threshold_certified_on: int
    """Sampled gold items (uniform draws, imported labels) the threshold was certified on."""
    teacher_gold_examples: int
    """Gold items the teacher had answered: its report is on them."""
    gate_passed: bool
    gate_metric: str
    """The F1 the gate compares: macro_f1, or micro_f1 over entities for a spans task."""
    train_sources: dict[str, int]
    """Training examples by the source of their label (human, teacher, student)."""
    teacher_model: str
    """The teacher the service ran when the student was trained."""


class TrainStudentResult(StudentMetrics):
    version: str
    path: str
    train_examples: int
    epochs_run: int


@dataclass(frozen=True)
class GoldEvaluation:
    student: StudentReport
    teacher: ClassificationReport
    confidences: list[float]
    """The student's top probability on each gold item."""
    correct: list[bool]
    """Whether its top label was right on each."""
    teacher_items: int
    """Gold items the teacher had answered (its report is on them)."""


def run_train_student(ctx: WorkerContext, job: Job, on_progress: Progress | None = None) -> TrainStudentResult:
    """Train, evaluate and register a student; ``on_progress`` (the CLI's progress bar) is called beside the job
    row's progress."""
    from service.backends.factory import load_span_student
    from service.backends.span_student import SPAN_TRAIN_CONFIG, SpanTrainer
    from service.backends.student_train import LoraTrainer

    with transaction(ctx.sessions) as session:
        task = tasks.get_task_by_id(session, job.task_id or 0)
        task_def = tasks.task_def(task)
        rows = history.training_rows(session, task_id=task.id)
        version = students.next_version(session, task_id=task.id)
    labels = task_def.label_names
    seed = int(job.payload.get("seed", 0))
    spans = task_def.kind == "spans"
    plan = plan_training(rows, labels=None if spans else kinds.columns(task_def.kind, labels), seed=seed)
    if len(plan.train) < ctx.settings.student.min_train_labels:
        raise ValueError(
            f"only {len(plan.train)} accepted labels to train on; need {ctx.settings.student.min_train_labels}"
        )
    out_dir = ctx.settings.resolved_adapters_dir / task.name / version
    last = [0.0]

    def progress(done: int, total: int) -> None:
        if on_progress is not None:
            on_progress(done, total)
        if time.monotonic() - last[0] >= PROGRESS_EVERY_S or done == total:
            last[0] = time.monotonic()
            with transaction(ctx.sessions) as session:
                job_store.renew(
                    session,
                    job.id,
                    worker=ctx.worker_id,
                    lease_s=ctx.settings.job_lease_s,
                    done=done,
                    message=f"training step {done}/{total}",
                    total=total,
                )

    config = replace(
        SPAN_TRAIN_CONFIG if spans else TrainConfig(),
        seed=seed,
        epochs=int(job.payload.get("epochs", TrainConfig.epochs)),
    )
    # Training's cost includes the gold evaluation: both are what a new student takes.
    gold_texts = [row.text for row in plan.gold]
    with ctx.metered("training", len(plan.train)):
        if spans:
            result = SpanTrainer().train(
                plan.train, labels, out_dir, config, progress, prompt_versions=plan.prompt_versions
            )
            tagger = load_span_student(ctx.settings, out_dir)
            gold = _evaluate_spans(tagger.predict_spans(gold_texts), plan.gold, task_def)
        else:
            result = LoraTrainer().train(
                plan.train, labels, out_dir, config, progress, prompt_versions=plan.prompt_versions, kind=task_def.kind
            )
            gold = _evaluate(ctx.student(str(out_dir)).predict_proba(gold_texts), plan.gold, task_def)
    spent = ctx.take_usage()
    # Gold the service picked for looking wrong is no sample of what the student will meet: certified on it, the
    # threshold answered for the hardest items (the demo's student, right on 98% of held-out messages, then
    # labeled nothing alone). Only sampled gold certifies.
    drawn = [i for i, row in enumerate(plan.gold) if row.sampled]
    gate_metric = "micro_f1" if spans else "macro_f1"
    certified = fit_student_threshold(
        confidences=[gold.confidences[i] for i in drawn],
        correct=[gold.correct[i] for i in drawn],
        epsilon=task.epsilon,
        delta=task.delta,
    )
    metrics = StudentMetrics(
        student=gold.student,
        teacher=gold.teacher,
        # No certified threshold means the student handles nothing on its own: every item still goes to the teacher.
        threshold=certified.threshold if certified.threshold is not None else UNCERTIFIED_THRESHOLD,
        threshold_error_bound=certified.error_bound,
        gold_examples=len(plan.gold),
        threshold_certified_on=len(drawn),
        teacher_gold_examples=gold.teacher_items,
        # A spans task's teacher labels none of its gold yet: its F1 there is 0, and the gate passes any student.
        gate_passed=promotion_gate(
            gate_f1(gold.student, gate_metric),
            gate_f1(gold.teacher, gate_metric),
            ctx.settings.student.promotion_margin,
        ),
        gate_metric=gate_metric,
        train_sources=plan.sources,
        teacher_model=ctx.settings.teacher.model,
    )
    with transaction(ctx.sessions) as session:
        students.add(session, task_id=task.id, version=version, path=str(out_dir), metrics=dict(metrics))
        usage.record(session, task_id=task.id, job_id=job.id, rows=spent)
    return TrainStudentResult(
        **metrics,
        version=version,
        path=str(out_dir),
        train_examples=len(plan.train),
        epochs_run=result.epochs_run,
    )


def train_now(
    ctx: WorkerContext, *, task_name: str, seed: int, epochs: int, on_progress: Progress | None
) -> TrainStudentResult:
    """Run a train_student job in this process (enqueued, claimed and finished like any job), for the CLI."""
    with transaction(ctx.sessions) as session:
        task = tasks.get_task(session, task_name)
        job = job_store.enqueue(
            session, kind="train_student", task_id=task.id, payload={"seed": seed, "epochs": epochs}
        )
        claimed = job_store.claim(
            session, worker=ctx.worker_id, lease_s=ctx.settings.job_lease_s, kinds=["train_student"]
        )
    assert claimed is not None and claimed.id == job.id
    result = run_train_student(ctx, claimed, on_progress)
    with transaction(ctx.sessions) as session:
        job_store.finish(session, claimed.id, worker=ctx.worker_id, result=result)
    return result


def _evaluate_spans(
    predicted: Sequence[tuple[str, float]], gold: Sequence[TrainingRow], task: TaskDef
) -> GoldEvaluation:
    """A span student's gold report (entity-level exact match, with micro-F1), the teacher's on the gold it labeled,
    and per item the student's confidence in its whole span set and whether the set is right."""
    truth = [row.label for row in gold]
    names = [name for name, _ in predicted]
    return GoldEvaluation(
        student=StudentReport(
            **kinds.report(task.kind, y_true=truth, y_pred=names, labels=task.label_names),
            ece=confidence_calibration_error(
                confidence=[c for _, c in predicted], correct=[p == t for p, t in zip(names, truth, strict=True)]
            ),
        ),
        **_teacher_report(gold, task),
        confidences=[confidence for _, confidence in predicted],
        correct=[p == t for p, t in zip(names, truth, strict=True)],
    )


class _TeacherReport(TypedDict):
    teacher: ClassificationReport
    teacher_items: int


def _teacher_report(gold: Sequence[TrainingRow], task: TaskDef) -> _TeacherReport:
    """The teacher's report on the gold items it had answered, and how many those are."""
    answered = [row for row in gold if row.teacher_label is not None]
    report = kinds.report(
        task.kind,
        y_true=[row.label for row in answered],
        y_pred=[str(row.teacher_label) for row in answered],
        labels=task.label_names,
    )
    return {"teacher": report, "teacher_items": len(answered)}


def _evaluate(probs: FloatArray, gold: Sequence[TrainingRow], task: TaskDef) -> GoldEvaluation:
    """The student's and the teacher's gold reports (per label and micro-F1 for a multi-label task) and, for the
    cascade's threshold, the student's confidence and correctness on each item (a label set is right whole)."""
    labels, columns = task.label_names, kinds.columns(task.kind, task.label_names)
    truth = [row.label for row in gold]
    predicted = [columns[int(row.argmax())] for row in probs]
    index = {label: i for i, label in enumerate(columns)}
    return GoldEvaluation(
        student=StudentReport(
            **kinds.report(task.kind, y_true=truth, y_pred=predicted, labels=labels),
            ece=expected_calibration_error(probs=probs, y_true=[index[t] for t in truth]),
        ),
        **_teacher_report(gold, task),
        confidences=[float(row.max()) for row in probs],
        correct=[p == t for p, t in zip(predicted, truth, strict=True)],
    )

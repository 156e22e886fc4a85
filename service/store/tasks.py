"""Tasks: what to label, with which labels, prompt and policy targets."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.api.schemas.tasks import TaskCreate
from service.errors import Conflict, Invalid, NotFound
from service.pipeline import kinds, label_sets, span_sets
from service.pipeline.kinds import Shown
from service.ports import Example, LabelDef, TaskDef, TaskKind
from service.store import guidelines
from service.tables import Task

DEFAULT_PROJECT = "default"


def create_task(session: Session, spec: TaskCreate, *, project: str | None = None) -> Task:
    """A new task in ``project`` (else the one the spec names, else the default project)."""
    task = Task(
        name=spec.name,
        project=project or spec.project or DEFAULT_PROJECT,
        labels=[label.model_dump() for label in spec.labels],
        instructions=spec.instructions,
        examples=[example.model_dump() for example in spec.examples],
        template=spec.prompt_template,
        epsilon=spec.epsilon,
        delta=spec.delta,
        audit_share=spec.audit_share,
        kind=spec.kind,
        review_budget=spec.review_budget,
        target_coverage=spec.target_coverage,
    )
    session.add(task)
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(f"a task named {spec.name!r} exists already", field="name") from exc
    guidelines.start(session, task)
    return task


def get_task(session: Session, name: str) -> Task:
    task = session.scalar(select(Task).where(Task.name == name))
    if task is None:
        raise NotFound(f"no task named {name!r}", field="task")
    return task


def get_task_by_id(session: Session, task_id: int) -> Task:
    task = session.get(Task, task_id)
    if task is None:
        raise NotFound(f"no task with id {task_id}", field="task")
    return task


def list_tasks(session: Session, *, project: str | None = None) -> list[Task]:
    """Every task, or only one project's."""
    query = select(Task).order_by(Task.id)
    if project is not None:
        query = query.where(Task.project == project)
    return list(session.scalars(query))


def project_of(session: Session, name: str) -> str | None:
    """The project of the task with this name; None when there is no such task."""
    return session.scalar(select(Task.project).where(Task.name == name))


def label_names(task: Task) -> list[str]:
    """The task's labels, as it was created with them."""
    return [str(label["name"]) for label in task.labels]


def label_values(task: Task) -> list[str]:
    """What an item's label may be, as stored: one of the labels, or a multi-label task's label set by its
    canonical name (pipeline/label_sets.py). Machine probabilities have one column per value, in this order.
    A spans task has no such columns: a Conflict."""
    if task.kind == "spans":
        raise Conflict(
            f"task {task.name!r} is a spans task: its span sets are not scored as label columns", field="kind"
        )
    return list(kinds.columns(kind_of(task), label_names(task)))


def score_columns(task: Task) -> list[str]:
    """The values of the machine's raw score columns (label_values); none for a spans task, whose raw scores are
    its spans' confidences."""
    return [] if task.kind == "spans" else label_values(task)


def answer_values(task: Task) -> list[str] | None:
    """What a reviewer's answer may be, for the reviewer model (store.answers): label_values, or None for a spans
    task (any span set of the item's text)."""
    return None if task.kind == "spans" else label_values(task)


def label_value(task: Task, given: object, *, text: str, field: str = "label") -> str:
    """The stored form of a label a person or file gives: a label of a single-label task; for a multi-label task
    a list of its labels (or a JSON string of one), returned as the set's canonical name; for a spans task a list
    of {start, end, label[, text]} objects, checked against the item's ``text``."""
    if task.kind == "spans":
        try:
            return span_sets.canonical(given, text=text, labels=label_names(task))
        except ValueError as error:
            raise Invalid(f"task {task.name!r} takes spans of its labels: {error}", field=field) from None
    if task.kind == "multi_label":
        try:
            return label_sets.canonical(given, label_names(task))
        except ValueError as error:
            raise Invalid(f"task {task.name!r} takes a list of its labels: {error}", field=field) from None
    if not isinstance(given, str) or given not in label_names(task):
        raise Invalid(f"{given!r} is not a label of task {task.name!r}; labels: {label_names(task)}", field=field)
    return given


def read_label(task: Task, value: object, text: str, *, field: str = "label") -> str:
    """The stored form of a label value read from a file (or an item's meta) beside its item's ``text`` (see
    label_value); Invalid, naming ``field``, when it is no label of the task."""
    return label_value(task, value if task.kind != "single_label" else str(value).strip(), text=text, field=field)


def public_label(task: Task, stored: str) -> Shown:
    """A stored label as the API shows it: the label, the list of a multi-label set's labels, or a spans task's
    list of {start, end, label}."""
    return kinds.shown(kind_of(task), label_names(task), stored)


def label_probs(task: Task, probs: Sequence[float]) -> dict[str, float]:
    """Per label, the probability that it is right (a multi-label task: that it applies), from a row of
    probabilities over ``label_values``."""
    return kinds.label_probs(kind_of(task), label_names(task), probs)


def kind_of(task: Task) -> TaskKind:
    """The task's kind (a row not yet flushed has none: single_label, the column's default)."""
    return task_kind(task.kind or "single_label")


def task_kind(stored: str) -> TaskKind:
    """The stored kind, checked against the kinds this version knows."""
    try:
        return kinds.kind_named(stored)
    except ValueError as exc:
        raise Invalid(str(exc), field="kind") from exc


def task_def(task: Task) -> TaskDef:
    return TaskDef(
        name=task.name,
        labels=tuple(LabelDef(str(label["name"]), str(label.get("description", ""))) for label in task.labels),
        instructions=task.instructions,
        examples=tuple(Example(str(e["text"]), str(e["label"])) for e in task.examples),
        template=task.template,
        kind=task_kind(task.kind),
    )

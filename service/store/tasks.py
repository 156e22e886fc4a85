"""Tasks: what to label, with which labels, prompt and policy targets."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.api.schemas.tasks import TaskCreate
from service.errors import Conflict, Invalid, NotFound
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
        template=spec.template,
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
    return [str(label["name"]) for label in task.labels]


def check_label(task: Task, label: str, *, field: str = "label") -> None:
    if label not in label_names(task):
        raise Invalid(f"{label!r} is not a label of task {task.name!r}; labels: {label_names(task)}", field=field)


def task_kind(stored: str) -> TaskKind:
    """The stored kind, checked against the kinds this version knows."""
    if stored != "single_label":
        raise Invalid(f"task kind {stored!r} is not supported by this version", field="kind")
    return "single_label"


def task_def(task: Task) -> TaskDef:
    return TaskDef(
        name=task.name,
        labels=tuple(LabelDef(str(label["name"]), str(label.get("description", ""))) for label in task.labels),
        instructions=task.instructions,
        examples=tuple(Example(str(e["text"]), str(e["label"])) for e in task.examples),
        template=task.template,
        kind=task_kind(task.kind),
    )

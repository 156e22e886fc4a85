"""Tasks: create, list, read."""

from __future__ import annotations

from fastapi import APIRouter, status

from service.api.deps import ClientDep, ReaderDep, SessionDep, SettingsDep
from service.api.schemas.tasks import TaskCreate, TaskPublic
from service.errors import Forbidden, Invalid
from service.pipeline.render import check_template
from service.store import tasks
from service.tables import Task

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])


def task_public(task: Task) -> TaskPublic:
    return TaskPublic.model_validate(
        {
            "name": task.name,
            "project": task.project,
            "kind": task.kind,
            "labels": task.labels,
            "instructions": task.instructions,
            "examples": [
                {**example, "label": tasks.public_label(task, str(example["label"]))} for example in task.examples
            ],
            "template": task.template,
            "epsilon": task.epsilon,
            "delta": task.delta,
            "audit_share": task.audit_share,
            "review_budget": task.review_budget,
            "target_coverage": task.target_coverage,
            "created_at": task.created_at,
        }
    )


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TaskPublic)
def create_task(body: TaskCreate, session: SessionDep, settings: SettingsDep, key: ClientDep) -> TaskPublic:
    try:
        check_template(body.prompt_template, settings.prompts_dir)
    except ValueError as error:
        raise Invalid(str(error), field="template") from error
    if key.project is not None and body.project not in (None, key.project):
        raise Forbidden(f"this key belongs to project {key.project!r}; it cannot create tasks elsewhere")
    return task_public(tasks.create_task(session, body, project=key.project))


@router.get("", response_model=list[TaskPublic])
def list_tasks(session: SessionDep, key: ReaderDep) -> list[TaskPublic]:
    """The tasks this key may see: a project's key, its project's."""
    return [task_public(task) for task in tasks.list_tasks(session, project=key.project)]


@router.get("/{task}", response_model=TaskPublic)
def read_task(task: str, session: SessionDep, _key: ReaderDep) -> TaskPublic:
    return task_public(tasks.get_task(session, task))

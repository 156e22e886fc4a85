"""Tasks: what to label, how, and the error target of accepted machine labels."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints, model_validator

from service.api.schemas.common import Name, NonEmptyText, Strict
from service.ports import ServedKind, TaskKind


class TaskLabel(Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^\S(.*\S)?$")]
    description: str = ""


class TaskExample(Strict):
    text: NonEmptyText
    label: str


class TaskCreate(Strict):
    name: Name = Field(description="Lower-case slug, unique: used in URLs.")
    project: Name | None = Field(
        None, description="The project it belongs to: a scoped key's own project (the default), else 'default'."
    )
    kind: ServedKind = Field("single_label", description="What one item's label is: one of the task's labels.")
    labels: list[TaskLabel] = Field(min_length=2, max_length=50)
    instructions: str = ""
    examples: list[TaskExample] = Field(default_factory=list, max_length=50)
    template: str = "classify/chatml"
    epsilon: float = Field(0.05, gt=0, lt=1, description="Target error of accepted machine labels.")
    delta: float = Field(0.1, gt=0, lt=1, description="The bound holds with confidence 1 - delta.")
    audit_share: float = Field(
        0.05, ge=0, le=1, description="Share of routed items sent to a blind review once a threshold is certified."
    )
    review_budget: int | None = Field(
        None, ge=1, description="Human reviews the task may spend; past it nothing waits for reviewers."
    )
    target_coverage: float | None = Field(
        None, gt=0, le=1, description="Share of items to auto-accept; GET /quality says how many reviews it needs."
    )

    @model_validator(mode="after")
    def _labels_consistent(self) -> TaskCreate:
        names = [label.name for label in self.labels]
        if len(set(names)) != len(names):
            raise ValueError("label names must be unique")
        for example in self.examples:
            if example.label not in names:
                raise ValueError(f"example label {example.label!r} is not one of the task's labels")
        return self


class TaskPublic(BaseModel):
    name: str
    project: str
    kind: TaskKind
    labels: list[TaskLabel]
    instructions: str
    examples: list[TaskExample]
    template: str
    epsilon: float
    delta: float
    audit_share: float
    review_budget: int | None
    target_coverage: float | None
    created_at: datetime

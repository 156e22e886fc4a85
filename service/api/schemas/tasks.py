"""Tasks: what to label, how, and the error target of accepted machine labels."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints, model_validator

from service.api.schemas.common import LabelValue, Name, NonEmptyText, Strict
from service.pipeline import label_sets
from service.ports import TaskKind

DEFAULT_TEMPLATES: dict[TaskKind, str] = {"single_label": "classify/chatml", "multi_label": "multi_label/chatml"}


class TaskLabel(Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^\S(.*\S)?$")]
    description: str = ""


class TaskExample(Strict):
    text: NonEmptyText
    label: LabelValue


class TaskCreate(Strict):
    name: Name = Field(description="Lower-case slug, unique: used in URLs.")
    project: Name | None = Field(
        None, description="The project it belongs to: a scoped key's own project (the default), else 'default'."
    )
    kind: TaskKind = Field(
        "single_label",
        description="What one item's label is: single_label, one of the task's labels; multi_label, the list of "
        f"those that apply, possibly empty (at most {label_sets.MAX_LABELS} labels).",
    )
    labels: list[TaskLabel] = Field(min_length=2, max_length=50)
    instructions: str = ""
    examples: list[TaskExample] = Field(default_factory=list, max_length=50)
    template: str | None = Field(
        None, description="Prompt template under prompts/ (default classify/chatml, multi_label/chatml)."
    )
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
        if self.kind == "multi_label" and len(names) > label_sets.MAX_LABELS:
            raise ValueError(f"a multi_label task has at most {label_sets.MAX_LABELS} labels, not {len(names)}")
        for example in self.examples:
            if self.kind == "multi_label":
                # Stored by the set's canonical name, as every label of the task is.
                example.label = label_sets.canonical(example.label, names)
            elif example.label not in names:
                raise ValueError(f"example label {example.label!r} is not one of the task's labels")
        # The answer format is the kind's: a multi-label template ends where "<label>: yes|no" lines begin.
        if (self.kind == "multi_label") != self.prompt_template.startswith("multi_label/"):
            raise ValueError(
                f"a {self.kind} task takes a template {'under' if self.kind == 'multi_label' else 'outside'} "
                "prompts/multi_label/"
            )
        return self

    @property
    def prompt_template(self) -> str:
        """The template given, else the kind's default."""
        return self.template or DEFAULT_TEMPLATES[self.kind]


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

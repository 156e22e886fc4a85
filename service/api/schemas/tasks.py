"""Tasks: what to label, how, and the error target of accepted machine labels."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints, model_validator

from service.api.schemas.common import LabelValue, Name, NonEmptyText, Strict
from service.pipeline import label_sets, span_sets
from service.ports import TaskKind

DEFAULT_TEMPLATES: dict[TaskKind, str] = {
    "single_label": "classify/chatml",
    "multi_label": "multi_label/chatml",
    "spans": "spans/chatml",
}
KIND_TEMPLATE_FOLDERS: dict[TaskKind, str] = {"multi_label": "multi_label/", "spans": "spans/"}
"""Where a kind's templates live: each kind's answer format is its own (single-label templates live elsewhere)."""


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
        f"those that apply, possibly empty (at most {label_sets.MAX_LABELS} labels); spans, a list of "
        '{"start", "end", "label"} character spans of the text, not overlapping, possibly empty.',
    )
    labels: list[TaskLabel] = Field(min_length=1, max_length=50, description="At least 2 for a single_label task.")
    instructions: str = ""
    examples: list[TaskExample] = Field(default_factory=list, max_length=50)
    template: str | None = Field(
        None, description="Prompt template under prompts/ (default classify/chatml, multi_label/chatml, spans/chatml)."
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
        if self.kind == "single_label" and len(names) < 2:
            raise ValueError("a single_label task has at least 2 labels")
        if self.kind == "multi_label" and len(names) > label_sets.MAX_LABELS:
            raise ValueError(f"a multi_label task has at most {label_sets.MAX_LABELS} labels, not {len(names)}")
        for index, example in enumerate(self.examples):
            # Stored by the canonical name of its set, as every label of the task is.
            if self.kind == "spans":
                try:
                    example.label = span_sets.canonical(example.label, text=example.text, labels=names)
                except ValueError as error:
                    raise ValueError(f"example {index}: {error}") from None
            elif self.kind == "multi_label":
                example.label = label_sets.canonical(example.label, names)
            elif example.label not in names:
                raise ValueError(f"example label {example.label!r} is not one of the task's labels")
        # The answer format is the kind's: a template under another kind's folder would ask for the wrong answer.
        folder = KIND_TEMPLATE_FOLDERS.get(self.kind)
        in_kind_folder = [name for name in KIND_TEMPLATE_FOLDERS.values() if self.prompt_template.startswith(name)]
        if (folder is None and in_kind_folder) or (folder is not None and not self.prompt_template.startswith(folder)):
            others = " and ".join(f"prompts/{name}" for name in KIND_TEMPLATE_FOLDERS.values())
            where = f"under prompts/{folder}" if folder else f"outside {others}"
            raise ValueError(f"a {self.kind} task takes a template {where}")
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

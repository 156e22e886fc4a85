"""Request and response models (XCreate / XPublic) for the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator, model_validator

from service.errors import Invalid

Name = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,99}$")]
NonEmptyText = Annotated[str, StringConstraints(min_length=1)]


def unstorable(value: Any, where: str = "") -> str | None:
    """Where in a JSON-like `value` the first string lies that the stores cannot hold: one with a NUL character
    (PostgreSQL refuses it in text and JSON columns) or an unpaired surrogate (not encodable as UTF-8), keys
    included; None when every string can be stored."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return where or "value"
        return where or "value" if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{where}.{key}" if where else str(key)
            # A bad key is named by where it sits, so the message does not carry the character back.
            found = unstorable(key, f"a key in {where or 'the body'}") or unstorable(item, inner)
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = unstorable(item, f"{where}.{index}" if where else str(index))
            if found:
                return found
    return None


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        found = unstorable(data)
        if found is not None:
            raise ValueError(f"{found} holds a NUL character or an unpaired surrogate, which cannot be stored")
        return data


class LabelIn(Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^\S(.*\S)?$")]
    description: str = ""


class ExampleIn(Strict):
    text: NonEmptyText
    label: str


class TaskCreate(Strict):
    name: Name = Field(description="Lower-case slug, unique: used in URLs.")
    labels: list[LabelIn] = Field(min_length=2, max_length=50)
    instructions: str = ""
    examples: list[ExampleIn] = Field(default_factory=list, max_length=50)
    template: str = "classify/chatml"
    epsilon: float = Field(0.05, gt=0, lt=1, description="Target error of accepted machine labels.")
    delta: float = Field(0.1, gt=0, lt=1, description="The bound holds with confidence 1 - delta.")
    audit_share: float = Field(0.05, ge=0, le=1, description="Share of accepted items also sent to review.")

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
    labels: list[LabelIn]
    instructions: str
    examples: list[ExampleIn]
    template: str
    epsilon: float
    delta: float
    audit_share: float
    created_at: datetime


class ItemIn(Strict):
    id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    text: str
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("text")
    @classmethod
    def _text_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text must not be empty")
        return value


def item_in(*, ident: str, text: str, meta: dict[str, Any], field: str) -> ItemIn:
    """An ItemIn from an imported file's row; a row that fails validation is an Invalid naming `field`."""
    try:
        return ItemIn(id=ident, text=text, meta=meta)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise Invalid(f"{field}{'.' + where if where else ''}: {first['msg']}", field=field) from exc


class BatchCreate(Strict):
    items: list[ItemIn] = Field(min_length=1)


class BatchPublic(BaseModel):
    id: int
    task: str
    url: str
    labels_url: str
    item_count: int
    counts: dict[str, int]
    progress: float = Field(description="Share of items with a machine score or a human label.")
    done: bool
    job_url: str | None
    created_at: datetime


class LabelPublic(BaseModel):
    item_id: str
    label: str | None
    confidence: float | None
    source: Literal["teacher", "student", "human"] | None
    state: str
    reasons: list[str]
    prompt_version: str | None
    model: str | None
    truncated: bool


class LabelPage(BaseModel):
    items: list[LabelPublic]
    next_cursor: str | None


class JobPublic(BaseModel):
    id: int
    kind: str
    state: str
    attempts: int
    progress_done: int
    progress_total: int
    message: str = Field(description="What the job is doing or waiting for.")
    error: str | None
    result: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class ReviewItemPublic(BaseModel):
    item_id: int
    external_id: str
    task: str
    text: str
    truncated: bool
    suggestion: str | None
    confidence: float | None
    probs: dict[str, float]
    reasons: list[str]
    priority: float
    priority_explanation: str
    lease_expires: datetime


class ResolveIn(Strict):
    label: str


class HealthPublic(BaseModel):
    status: Literal["ok"]
    database: str
    teacher: str | None = None


class ApiKeyCreate(Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    role: Literal["client", "reviewer", "admin"]


class ApiKeyPublic(BaseModel):
    name: str
    role: str
    key: str | None = Field(None, description="Shown once, at creation.")

"""Batches of raw items in, and their labels out."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, ValidationError, field_validator

from service.api.schemas.common import LabelValue, Strict
from service.errors import Invalid


class ItemCreate(Strict):
    id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    text: str
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("text")
    @classmethod
    def _text_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text must not be empty")
        return value


def item_create(*, ident: str, text: str, meta: dict[str, Any], field: str) -> ItemCreate:
    """An ItemCreate from an imported file's row; a row that fails validation is an Invalid naming `field`."""
    try:
        return ItemCreate(id=ident, text=text, meta=meta)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise Invalid(f"{field}{'.' + where if where else ''}: {first['msg']}", field=field) from exc


class BatchCreate(Strict):
    items: list[ItemCreate] = Field(min_length=1)


class BatchPublic(BaseModel):
    id: int
    task: str
    url: str
    labels_url: str
    item_count: int
    counts: dict[str, int]
    progress: float = Field(description="Share of items with a machine score or a human label.")
    done: bool
    job_url: str | None = Field(description="The first of its label jobs.")
    job_urls: list[str] = Field(
        description="Its label jobs: one per `label_job_items` items, shared by the workers (one for most batches)."
    )
    created_at: datetime


class ImportPublic(BaseModel):
    matched: int = Field(description="Rows whose id is the external id of an item the task has: they update it.")
    labeled: int = Field(description="Human labels written, on matched and added items.")
    added: int = Field(description="Rows that named no item of the task: new items, in `batch`.")
    unchanged: int = Field(description="Matched rows with no label, or with the label the item has already.")
    batch: BatchPublic | None = Field(description="The batch of the added items; null when every row matched.")


class LabelPublic(BaseModel):
    item_id: str
    label: LabelValue | None
    confidence: float | None
    source: Literal["teacher", "student", "human", "adjudicated"] | None
    state: str
    reasons: list[str]
    prompt_version: str | None
    model: str | None
    truncated: bool


class LabelPage(BaseModel):
    items: list[LabelPublic]
    next_cursor: str | None

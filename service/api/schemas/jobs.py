"""Jobs: long work (labeling a batch, training a student) as a row that workers claim under a lease."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


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

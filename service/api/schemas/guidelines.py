"""A task's guidelines for reviewers, versioned."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from service.api.schemas.common import Strict


class GuidelinesUpdate(Strict):
    text: str = Field(description="The guidelines in Markdown; a text that differs from the current adds a version.")


class GuidelinesPublic(BaseModel):
    version: int
    text: str
    author: str = Field(description="Who wrote this version (task: the instructions the task was created with).")
    created_at: datetime

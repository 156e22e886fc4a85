"""API keys."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from service.api.schemas.common import Strict


class ApiKeyCreate(Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    role: Literal["client", "reviewer", "admin"]


class ApiKeyPublic(BaseModel):
    name: str
    role: str
    key: str | None = Field(None, description="Shown once, at creation.")

"""Students: training jobs, versions with their gold metrics, promotion."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from service.api.schemas.common import Strict


class StudentCreate(Strict):
    seed: int = 0
    epochs: int = Field(10, ge=1, le=100)


class StudentJobPublic(BaseModel):
    job_id: int
    job_url: str


class StudentPublic(BaseModel):
    version: str
    path: str
    promoted: bool
    metrics: dict[str, Any]


class PromotionCreate(Strict):
    force: bool = Field(False, description="Admin override: promote even when the gate fails.")

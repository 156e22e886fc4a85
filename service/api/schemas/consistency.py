"""Consistency checks: near-identical items whose final labels differ."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from service.api.schemas.common import LabelValue


class CheckPublic(BaseModel):
    state: Literal["done", "queued"] = Field(
        description="done: the check ran in the request (200); queued: it is large and runs as a job (202)."
    )
    checked: int = Field(
        description="Items labeled since the last check, each compared with every labeled item (queued: labels "
        "written since the last check, the size of the check to come)."
    )
    compared_with: int = Field(description="Labeled items with an embedding.")
    found: int | None = Field(description="New pairs whose final labels differ (queued: null until the job ends).")
    min_cosine: float
    seconds: float | None
    job_id: int | None = None
    job_url: str | None = Field(None, description="Where the job's state and, when it ends, its result are read.")


class PairItemPublic(BaseModel):
    item_id: int
    external_id: str
    text: str
    label: LabelValue


class InconsistentPairPublic(BaseModel):
    pair_id: int
    cosine: float
    first: PairItemPublic
    second: PairItemPublic
    found_at: datetime

"""Consistency checks: near-identical items whose final labels differ."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class CheckPublic(BaseModel):
    checked: int = Field(description="Items labeled since the last check, each compared with every labeled item.")
    compared_with: int = Field(description="Labeled items with an embedding.")
    found: int = Field(description="New pairs whose final labels differ.")
    min_cosine: float
    seconds: float


class PairItemPublic(BaseModel):
    item_id: int
    external_id: str
    text: str
    label: str


class InconsistentPairPublic(BaseModel):
    pair_id: int
    cosine: float
    first: PairItemPublic
    second: PairItemPublic
    found_at: datetime

"""API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, Field, StringConstraints

from service.api.schemas.common import Name, Strict

MAX_GRACE_S = 30 * 24 * 3600


class ApiKeyCreate(Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    role: Literal["client", "reviewer", "lead", "admin"]
    project: Name | None = Field(
        None, description="A client key's project: it sees and changes only that project's tasks; null: all."
    )
    expires_at: AwareDatetime | None = Field(
        None, strict=False, description="When the key stops working (ISO 8601 with a time zone); null: never."
    )


class ApiKeyRotate(Strict):
    grace_s: int = Field(
        3600, ge=0, le=MAX_GRACE_S, description="How long the current secret keeps working beside the new one."
    )


class ApiKeyInfo(BaseModel):
    name: str
    role: str
    project: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None = Field(description="Recorded at most once a minute.")
    previous_valid_until: datetime | None = Field(
        description="After a rotation, until when the previous secret still works."
    )
    active: bool = Field(description="Neither revoked nor expired.")


class ApiKeyPublic(ApiKeyInfo):
    key: str = Field(description="The secret: shown once, at creation or rotation.")

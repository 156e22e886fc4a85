"""Liveness and readiness, beside the API."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from service.api.deps import SessionDep, SettingsDep
from service.schemas import HealthPublic

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthPublic)
def health() -> HealthPublic:
    return HealthPublic(status="ok", database="not checked")


@router.get("/ready", response_model=HealthPublic)
def ready(session: SessionDep, settings: SettingsDep) -> HealthPublic:
    session.execute(text("SELECT 1"))
    return HealthPublic(status="ok", database=session.get_bind().dialect.name, teacher=settings.teacher.backend)

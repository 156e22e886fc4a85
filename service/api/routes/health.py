"""Liveness and readiness, beside the API."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.deps import SessionDep, SettingsDep
from service.api.schemas.health import HealthPublic
from service.store.health import ping

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthPublic)
def health() -> HealthPublic:
    return HealthPublic(status="ok", database="not checked")


@router.get("/ready", response_model=HealthPublic)
def ready(session: SessionDep, settings: SettingsDep) -> HealthPublic:
    return HealthPublic(status="ok", database=ping(session), teacher=settings.teacher.backend)

"""The app factory: create_app(settings) -> FastAPI, with the database and settings on app.state."""

from __future__ import annotations

import gc
from pathlib import Path

from fastapi import FastAPI

from service import db
from service.api.cache import TtlCache
from service.api.deps import KEY_CACHE_S
from service.api.limits import BodySizeLimit, RateLimiter
from service.api.observability import RequestObservation
from service.api.routes import (
    adjudication_page,
    batches,
    consistency,
    cost,
    dashboard,
    exports,
    guidelines,
    health,
    jobs,
    keys,
    metrics,
    predict,
    quality,
    review,
    review_admin,
    review_page,
    students,
    tasks,
)
from service.api.routes.dashboard import Figures
from service.api.routes.predict import PROMOTED_CACHE_S, Promoted
from service.api.schemas.problem import PROBLEM_RESPONSES, problem_media_type
from service.config import Settings, get_settings
from service.errors import install_handlers
from service.ports import SpanTagger, Student
from service.store import keys as key_store
from service.store.web_sessions import LoggedIn
from service.tables import ApiKey


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    sessions = db.open(settings)
    if settings.admin_key:
        with db.transaction(sessions) as session:
            key_store.ensure_key(session, name="admin", role="admin", plain=settings.admin_key)

    app = FastAPI(
        title="Understudy",
        version="0.1.0",
        description="LLM-assisted auto-labeling: teacher, confidence filter, human review, LoRA student.",
    )
    app.state.settings = settings
    app.state.engine = db.engine_of(sessions)
    app.state.sessions = sessions
    app.state.key_cache = TtlCache[str, ApiKey](KEY_CACHE_S)
    app.state.session_cache = TtlCache[str, LoggedIn](KEY_CACHE_S)
    app.state.project_cache = TtlCache[str, str | None](KEY_CACHE_S)
    app.state.rate_limiter = RateLimiter(per_s=settings.rate_limit_per_s, burst=settings.rate_limit_burst)
    app.state.predictors = {}
    app.state.promoted_cache = TtlCache[str, Promoted](PROMOTED_CACHE_S)
    app.state.dashboard_figures = Figures()
    app.state.student_loader = lambda path: _load_student(settings, path)
    install_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestObservation)  # added last: outermost, so it times and tags every response
    for module in (
        health,
        metrics,
        tasks,
        batches,
        jobs,
        review,
        review_admin,
        consistency,
        guidelines,
        students,
        predict,
        quality,
        cost,
        keys,
        exports,
    ):
        app.include_router(module.router, responses=PROBLEM_RESPONSES)
    for page in (
        review_page,
        dashboard,
        adjudication_page,
    ):  # HTML pages: their failures are pages or redirects, not problems
        app.include_router(page.router)
    generate = app.openapi
    app.openapi = lambda: problem_media_type(generate())  # type: ignore[method-assign]
    return app


def served_app() -> FastAPI:
    """The app for `uvicorn service.main:served_app --factory` (one per uvicorn worker process): created, then its
    startup heap settled, as `understudy serve` does around its embedded worker."""
    app = create_app()
    settle_heap()
    return app


def settle_heap() -> None:
    """Called once by a long-running process when startup is over. The objects made until then (modules, torch,
    the app, loaded models: hundreds of thousands) live as long as the process, and the collector walked them all
    at every full collection: a dashboard request that reads 10k rows spent 140 of its 180 ms in such pauses.
    Frozen, they are left out of collections; garbage from startup is collected first so none is frozen."""
    gc.collect()
    gc.freeze()


def _load_student(settings: Settings, path: Path) -> Student | SpanTagger:
    from service.backends.factory import load_any_student

    return load_any_student(settings, path)

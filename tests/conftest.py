"""Shared fixtures: a database per test (SQLite always; PostgreSQL when reachable, required in CI), the app, keys
and a worker context with fake or real models."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service import db
from service.config import PolicySettings, Settings
from service.jobs.context import WorkerContext
from service.main import create_app
from service.store import keys
from tests.fakes import HashEmbedder, KeywordTeacher

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

PG_ADMIN_URL = os.environ.get("UNDERSTUDY_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ADMIN_KEY = "test-admin-key"


def postgres_admin() -> Any:
    """An autocommit connection to the PostgreSQL server the tests use; the test is skipped (with why) where it is
    not reachable, unless UNDERSTUDY_REQUIRE_POSTGRES=1."""
    import psycopg

    plain = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
    try:
        return psycopg.connect(plain, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if os.environ.get("UNDERSTUDY_REQUIRE_POSTGRES") == "1":
            raise
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL} ({exc.__class__.__name__}); set UNDERSTUDY_TEST_PG")


def _postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    admin = postgres_admin()
    name = f"understudy_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'understudy.db'}"
    else:
        yield from _postgres_database()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        adapters_dir=tmp_path / "adapters",
        admin_key=ADMIN_KEY,
        policy=PolicySettings(min_reviews=30, seed_reviews=40),
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings)
    with TestClient(app) as test_client:
        yield test_client
    app.state.engine.dispose()


def make_key(settings: Settings, role: str) -> dict[str, str]:
    sessions = db.open(settings)
    with db.transaction(sessions) as session:
        _, plain = keys.create_key(session, name=f"{role}-{uuid.uuid4().hex[:6]}", role=role)
    db.engine_of(sessions).dispose()
    return {"Authorization": f"Bearer {plain}"}


def assigned_reviewer(client: TestClient, settings: Settings, task: str = "sms") -> dict[str, str]:
    """A new reviewer key, assigned to ``task`` by the admin."""
    headers = make_key(settings, "reviewer")
    name = client.get("/v1/review/me", headers=headers).json()["name"]
    assert (
        client.put(f"/v1/tasks/{task}/reviewers/{name}", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).status_code
        == 200
    )
    return headers


@pytest.fixture
def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture
def client_headers(settings: Settings, client: TestClient) -> dict[str, str]:
    return make_key(settings, "client")


@pytest.fixture
def reviewer_headers(settings: Settings, client: TestClient) -> dict[str, str]:
    return make_key(settings, "reviewer")


@pytest.fixture
def fake_worker(settings: Settings, client: TestClient) -> WorkerContext:
    """A worker on the test database with the keyword teacher and the hash embedder."""
    return WorkerContext(
        settings=settings,
        sessions=db.open(settings),
        teacher_factory=KeywordTeacher,
        embedder_factory=HashEmbedder,
        student_loader=lambda path: pytest.fail(f"no student expected, asked for {path}"),
    )


SPAM_TASK = {
    "name": "sms",
    "labels": [{"name": "ham", "description": "personal"}, {"name": "spam", "description": "advertising"}],
    "instructions": "Classify the SMS message.",
    "epsilon": 0.1,
    "delta": 0.1,
}

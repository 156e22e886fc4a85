"""The review load benchmark's fixtures: a database seeded with a queue of items waiting for review and assigned
reviewer keys, the server in a subprocess, and a scratch PostgreSQL database."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx

from service.db import engine_of, open_database, transaction
from service.store.review_seed import seed_review_queue

LABELS = ("ham", "spam")
ADMIN_KEY = "review-load-admin"


def seed(database_url: str, *, items: int, reviewers: int) -> tuple[str, list[str]]:
    """A task with `items` items waiting for review; returns its name and one assigned reviewer key per reviewer."""
    sessions = open_database(database_url)
    with transaction(sessions) as session:
        task_name, plain = seed_review_queue(session, labels=LABELS, items=items, reviewers=reviewers)
    engine = engine_of(sessions)
    with engine.connect() as connection:
        # Fresh statistics, as a database in use would have, so the planner sees the seeded queue's real size.
        connection.exec_driver_sql("ANALYZE")
        connection.commit()
    engine.dispose()
    return task_name, plain


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_server(
    database_url: str,
    data_dir: Path,
    *,
    workers: int = 1,
    admin_key: str | None = ADMIN_KEY,
    extra_env: Mapping[str, str] | None = None,
    started: list[subprocess.Popen[bytes]] | None = None,
) -> Iterator[str]:
    """`uvicorn service.main:served_app --factory` on a free port, until the block ends; ``admin_key`` None starts
    it without bootstrapping an admin key (a database that has its own). The process is appended to ``started``
    (to watch its memory)."""
    port = _free_port()
    env = {
        **{key: value for key, value in {**os.environ, **(extra_env or {})}.items() if key != "UNDERSTUDY_ADMIN_KEY"},
        "UNDERSTUDY_DATABASE_URL": database_url,
        "UNDERSTUDY_DATA_DIR": str(data_dir),
        **({"UNDERSTUDY_ADMIN_KEY": admin_key} if admin_key is not None else {}),
    }
    command = [sys.executable, "-m", "uvicorn", "service.main:served_app", "--factory", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--workers", str(workers), "--log-level", "warning", "--no-access-log"], env=env
    )
    if started is not None:
        started.append(process)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start (exit code {process.poll()})")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextlib.contextmanager
def scratch_postgres(admin_url: str) -> Iterator[str]:
    """A new PostgreSQL database on the server of `admin_url` (a database it may CREATE DATABASE from), dropped
    afterwards; yields its SQLAlchemy URL."""
    import psycopg

    name = f"review_load_{uuid.uuid4().hex[:10]}"
    plain = admin_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        # A connection of its own: the fault benchmark restarts the server in between.
        with psycopg.connect(plain, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

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
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from service.db import make_engine, migrate, session_factory, transaction
from service.schemas import LabelIn, TaskCreate
from service.store import keys, tasks
from service.tables import Batch, Decision, Item, Prediction, ReviewAssignment, ReviewEntry

LABELS = ("ham", "spam")
ADMIN_KEY = "review-load-admin"


def seed(database_url: str, *, items: int, reviewers: int) -> tuple[str, list[str]]:
    """A task with `items` items waiting for review; returns its name and one assigned reviewer key per reviewer."""
    engine = make_engine(database_url)
    migrate(engine)
    with transaction(session_factory(engine)) as session:
        task = tasks.create_task(
            session,
            TaskCreate(
                name=f"load-{uuid.uuid4().hex[:8]}", labels=[LabelIn(name=label) for label in LABELS], epsilon=0.05
            ),
        )
        batch = Batch(task_id=task.id, idempotency_key=None, request_sha="0" * 64, item_count=items)
        session.add(batch)
        session.flush()
        session.execute(
            insert(Item),
            [
                {
                    "task_id": task.id,
                    "batch_id": batch.id,
                    "external_id": f"i{i}",
                    "text": f"message {i}",
                    "state": "review",
                }
                for i in range(items)
            ],
        )
        _seed_predictions(session, task_id=task.id)
        plain = []
        for index in range(reviewers):
            name = f"{task.name}-reviewer-{index}"
            plain.append(keys.create_key(session, name=name, role="reviewer")[1])
            session.add(ReviewAssignment(task_id=task.id, reviewer=name, assigned_by="bench"))
        task_name = task.name
    with engine.connect() as connection:
        # Fresh statistics, as a database in use would have, so the planner sees the seeded queue's real size.
        connection.exec_driver_sql("ANALYZE")
        connection.commit()
    engine.dispose()
    return task_name, plain


def _seed_predictions(session: Session, *, task_id: int) -> None:
    rng = np.random.default_rng(0)
    ids = list(session.scalars(select(Item.id).where(Item.task_id == task_id).order_by(Item.id)))
    confidence = rng.uniform(0.5, 0.99, size=len(ids))
    session.execute(
        insert(Prediction),
        [
            {
                "item_id": item_id,
                "source": "teacher",
                "model": "bench",
                "raw_probs": [float(c), float(1 - c)],
                "probs": [float(c), float(1 - c)],
                "label": "ham",
                "confidence": float(c),
            }
            for item_id, c in zip(ids, confidence, strict=True)
        ],
    )
    predictions = dict(
        session.execute(select(Prediction.item_id, Prediction.id).where(Prediction.item_id.in_(ids))).all()
    )
    session.execute(
        insert(Decision),
        [
            {"item_id": item_id, "prediction_id": predictions[item_id], "accept": False, "reasons": ["low_confidence"]}
            for item_id in ids
        ],
    )
    session.execute(
        insert(ReviewEntry),
        [
            {"item_id": item_id, "task_id": task_id, "priority": float(1 - c), "explanation": "bench"}
            for item_id, c in zip(ids, confidence, strict=True)
        ],
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_server(database_url: str, data_dir: Path, *, workers: int = 1) -> Iterator[str]:
    """`uvicorn service.main:create_app --factory` on a free port, until the block ends."""
    port = _free_port()
    env = {
        **os.environ,
        "UNDERSTUDY_DATABASE_URL": database_url,
        "UNDERSTUDY_DATA_DIR": str(data_dir),
        "UNDERSTUDY_ADMIN_KEY": ADMIN_KEY,
    }
    command = [sys.executable, "-m", "uvicorn", "service.main:create_app", "--factory", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--workers", str(workers), "--log-level", "warning", "--no-access-log"], env=env
    )
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
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

"""A worker killed with SIGKILL in the middle of a batch: another one finishes it and every item is labeled once.

Real worker processes with the real teacher (SmolLM2) and embedder, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from service.config import Settings
from service.datasets import load_builtin
from tests.conftest import SPAM_TASK

pytestmark = pytest.mark.integration
ITEMS = 48


def _worker(settings: Settings, *extra: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "UNDERSTUDY_DATABASE_URL": settings.resolved_database_url,
        "UNDERSTUDY_DATA_DIR": str(settings.data_dir),
        "UNDERSTUDY_JOB_LEASE_S": "4",
        "UNDERSTUDY_TEACHER__CHUNK_SIZE": "6",
        # No waiting for reviewers: every cold-start item goes straight to the review queue.
        "UNDERSTUDY_POLICY__SEED_REVIEWS": "100000",
        "HF_HUB_OFFLINE": "1",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "service.cli", "worker", *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _count(settings: Settings, sql: str) -> int:
    engine = create_engine(settings.resolved_database_url)
    with engine.connect() as connection:
        value = connection.execute(text(sql)).scalar_one()
    engine.dispose()
    return int(value)


def test_sigkill_mid_batch_then_every_item_labeled_exactly_once(
    client: TestClient, client_headers: dict[str, str], settings: Settings, tmp_path: Path
) -> None:
    client.post("/v1/tasks", json=SPAM_TASK, headers=client_headers)
    messages = load_builtin("sms_spam")[:ITEMS]
    batch = client.post(
        "/v1/tasks/sms/batches",
        json={"items": [{"id": f"m{i}", "text": t} for i, (t, _) in enumerate(messages)]},
        headers=client_headers,
    ).json()

    first = _worker(settings)
    deadline = time.monotonic() + 600
    while _count(settings, "SELECT count(*) FROM predictions") < 6:
        assert first.poll() is None, first.stdout.read().decode() if first.stdout else ""
        assert time.monotonic() < deadline, "the first worker scored nothing in 10 minutes"
        time.sleep(0.5)
    first.send_signal(signal.SIGKILL)
    first.wait()
    done_before = _count(settings, "SELECT count(*) FROM items WHERE state != 'queued'")
    assert 0 < done_before < ITEMS, "the kill must land in the middle of the batch"

    time.sleep(5)  # the first worker's 4 s lease must expire before the job is claimable again
    second = _worker(settings, "--exit-when-idle")
    output, _ = second.communicate(timeout=900)
    status = client.get(batch["url"], headers=client_headers).json()
    assert status["counts"]["queued"] == 0, output.decode()[-2000:]
    assert _count(settings, "SELECT count(*) FROM predictions") == ITEMS
    assert _count(settings, "SELECT count(*) FROM decisions") == ITEMS
    assert _count(settings, "SELECT count(DISTINCT item_id) FROM decisions") == ITEMS
    assert (
        _count(settings, "SELECT count(*) FROM review_queue") + _count(settings, "SELECT count(*) FROM labels") == ITEMS
    )
    assert _count(settings, "SELECT attempts FROM jobs WHERE kind = 'label_batch'") >= 2

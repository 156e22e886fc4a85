"""A large batch is split into chunk jobs that several workers share: every item labeled exactly once, each job
over its own chunk."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from service import db
from service.config import Settings
from service.jobs import worker
from service.jobs.context import WorkerContext
from service.store import items
from tests.conftest import SPAM_TASK
from tests.fakes import HashEmbedder, KeywordTeacher


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared settings, with chunk jobs of 10 items."""
    return settings.model_copy(update={"label_job_items": 10})


def test_two_workers_share_a_batch_in_chunk_jobs(
    client: TestClient, client_headers: dict[str, str], settings: Settings, fake_worker: WorkerContext
) -> None:
    client.post("/v1/tasks", json={**SPAM_TASK, "review_budget": 1}, headers=client_headers)
    body = {
        "items": [{"id": f"i{n}", "text": f"win a free prize {n}" if n % 2 else f"lunch at {n}"} for n in range(35)]
    }
    batch = client.post("/v1/tasks/sms/batches", json=body, headers=client_headers).json()
    assert len(batch["job_urls"]) == 4 and batch["job_url"] == batch["job_urls"][0]
    jobs = [client.get(url, headers=client_headers).json() for url in batch["job_urls"]]
    assert sum(job["progress_total"] for job in jobs) == 35 and all(job["progress_total"] for job in jobs)

    other = WorkerContext(
        settings=settings,
        sessions=db.open(settings),
        teacher_factory=KeywordTeacher,
        embedder_factory=HashEmbedder,
        student_loader=fake_worker.student_loader,
    )
    claimed = {fake_worker.worker_id: 0, other.worker_id: 0}
    busy = True
    while busy:
        busy = False
        for ctx in (fake_worker, other):
            if worker.run_once(ctx):
                claimed[ctx.worker_id] += 1
                busy = True
    assert all(claimed.values()), f"both workers took chunk jobs: {claimed}"
    jobs = [client.get(url, headers=client_headers).json() for url in batch["job_urls"]]
    assert [job["state"] for job in jobs] == ["done"] * 4
    assert [job["progress_done"] for job in jobs] == [job["progress_total"] for job in jobs]
    assert sum(job["result"]["teacher_items"] for job in jobs) == 35, "each job labeled its own chunk"
    with db.transaction(fake_worker.sessions) as session:
        assert items.predictions_per_item(session) == {1: 35}, "every item labeled exactly once"
    assert client.get(batch["url"], headers=client_headers).json()["done"]

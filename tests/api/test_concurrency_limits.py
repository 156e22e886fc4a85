"""Concurrent identical Idempotency-Key requests, the per-key rate limit, and a database that is down. On both
stores, with requests sent at the same moment from threads."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from service import db
from service.config import Settings
from service.main import create_app
from service.store import batches
from service.tables import Batch, Item
from tests.conftest import ADMIN_KEY, SPAM_TASK

THREADS = 8


def _at_once(send: Callable[[int], httpx.Response]) -> list[httpx.Response]:
    barrier = threading.Barrier(THREADS)
    responses: list[httpx.Response | None] = [None] * THREADS

    def run(index: int) -> None:
        barrier.wait()
        responses[index] = send(index)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert all(response is not None for response in responses)
    return [response for response in responses if response is not None]


def test_concurrent_requests_with_one_idempotency_key_make_one_batch(
    client: TestClient, client_headers: dict[str, str], settings: Settings
) -> None:
    client.post("/v1/tasks", json=SPAM_TASK, headers=client_headers)
    items = [{"id": f"i{i}", "text": f"message {i}"} for i in range(50)]
    headers = {**client_headers, "Idempotency-Key": "same-upload"}
    responses = _at_once(lambda _: client.post("/v1/tasks/sms/batches", json={"items": items}, headers=headers))
    codes = Counter(response.status_code for response in responses)
    assert codes == {202: 1, 200: THREADS - 1}, [r.text for r in responses if r.status_code >= 300]
    assert len({response.json()["id"] for response in responses}) == 1
    sessions = db.open(settings)
    with db.transaction(sessions) as session:
        assert session.scalar(select(func.count()).select_from(Batch)) == 1
        assert session.scalar(select(func.count()).select_from(Item)) == 50

    other = {**client_headers, "Idempotency-Key": "racing-bodies"}
    raced = _at_once(
        lambda i: client.post(
            "/v1/tasks/sms/batches", json={"items": [{"id": "x", "text": f"body {i % 2}"}]}, headers=other
        )
    )
    winners = [i for i, response in enumerate(raced) if response.status_code == 202]
    assert len(winners) == 1
    won = winners[0]
    for i, response in enumerate(raced):
        if i == won:
            continue
        if i % 2 == won % 2:
            assert response.status_code == 200 and response.json()["id"] == raced[won].json()["id"]
        else:
            assert response.status_code == 409 and "different request body" in response.json()["detail"]
    db.engine_of(sessions).dispose()


def test_a_key_over_its_rate_gets_429_with_retry_after(settings: Settings) -> None:
    limited = settings.model_copy(update={"rate_limit_per_s": 0.5, "rate_limit_burst": 3})
    app = create_app(limited)
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with TestClient(app) as client:
        codes = [client.get("/v1/tasks", headers=admin).status_code for _ in range(4)]
        refused = client.get("/v1/tasks", headers=admin)
        assert codes == [200, 200, 200, 429] and refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert int(refused.headers["retry-after"]) >= 1 and "rate limit" in refused.json()["detail"]
        assert client.get("/health").status_code == 200, "what needs no key is not limited"
    db.engine_of(app.state.sessions).dispose()


def test_a_database_that_is_down_answers_503_not_500(
    client: TestClient, client_headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client.post("/v1/tasks", json=SPAM_TASK, headers=client_headers)

    def down(*_args: object, **_kwargs: object) -> object:
        raise OperationalError("INSERT INTO batches", {}, ConnectionRefusedError("connection refused"))

    monkeypatch.setattr(batches, "create_batch", down)
    response = client.post("/v1/tasks/sms/batches", json={"items": [{"id": "a", "text": "hi"}]}, headers=client_headers)
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    assert response.json()["type"].endswith("/database-unavailable")


def test_a_worker_waits_out_a_database_outage(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    from service.jobs import worker
    from service.jobs.context import WorkerContext

    calls: list[str] = []
    stop = threading.Event()

    def flaky(_ctx: WorkerContext) -> bool:
        calls.append("call")
        if len(calls) <= 2:
            raise OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))
        stop.set()
        return False

    monkeypatch.setattr(worker, "run_once", flaky)
    ctx = WorkerContext(
        settings=settings.model_copy(update={"worker_poll_s": 0.01}),
        sessions=None,  # type: ignore[arg-type]
        teacher_factory=lambda: pytest.fail("no model is needed"),
        embedder_factory=lambda: pytest.fail("no model is needed"),
        student_loader=lambda _path: pytest.fail("no model is needed"),
    )
    worker.run(ctx, stop=stop)
    assert len(calls) == 3, "two failed claims, then the worker went on"

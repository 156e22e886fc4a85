"""/metrics in Prometheus format: the service's state from the database, the worker's counters and request
latency by route; every response carries a request id, and the access log line has it. On both stores."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from service.jobs import worker
from service.jobs.context import WorkerContext
from service.logs import JsonFormatter
from tests.conftest import SPAM_TASK


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_report_the_tasks_the_jobs_the_worker_and_request_latency(
    client: TestClient, client_headers: dict[str, str], fake_worker: WorkerContext
) -> None:
    assert client.post("/v1/tasks", json={**SPAM_TASK, "name": "metered"}, headers=client_headers).status_code == 201
    items = [{"id": f"m{i}", "text": f"free prize {i}" if i % 2 else f"see you at {i}"} for i in range(8)]
    client.post("/v1/tasks/metered/batches", json={"items": items}, headers=client_headers)
    before = _samples(client.get("/metrics").text)
    queued = before[("understudy_jobs", (("kind", "label_batch"), ("state", "queued")))]
    assert (
        queued >= 1
        and before[("understudy_job_oldest_age_seconds", (("kind", "label_batch"), ("state", "queued")))] >= 0
    )
    while worker.run_once(fake_worker):
        pass
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    after = _samples(response.text)
    states = {
        dict(labels)["state"]: value
        for (name, labels), value in after.items()
        if name == "understudy_items" and dict(labels)["task"] == "metered"
    }
    assert sum(states.values()) == 8 and states.get("queued", 0) == 0
    backlog = after[("understudy_review_backlog", (("task", "metered"),))]
    assert backlog == states.get("review", 0) > 0, "cold start: the items wait for reviewers"
    labeled = sum(
        value
        for (name, labels), value in after.items()
        if name == "understudy_items_labeled_total" and dict(labels)["task"] == "metered"
    )
    assert labeled >= 8, "the in-process worker's counter (a module-wide counter: other tests add to it too)"
    assert after[("understudy_jobs_ended_total", (("kind", "label_batch"), ("outcome", "done")))] >= 1
    assert after[("understudy_jobs", (("kind", "label_batch"), ("state", "done")))] >= 1
    route = (("method", "POST"), ("route", "/v1/tasks/{task}/batches"), ("status", "202"))
    assert after[("understudy_http_request_duration_seconds_count", route)] >= 1, "by route template, not path"
    assert ("understudy_coverage", (("task", "metered"),)) in after
    families = list(text_string_to_metric_families(response.text))
    # Declared metrics count even without a sample yet (no certificate, no human label in this run).
    exported = {family.name for family in families} | {sample.name for family in families for sample in family.samples}
    dashboard = (Path(__file__).parents[2] / "deploy" / "grafana" / "understudy.json").read_text()
    wanted = set(re.findall(r"understudy_[a-z_]+", dashboard)) - {"understudy_"}
    assert wanted and wanted <= exported, f"the Grafana dashboard asks for metrics nobody exports: {wanted - exported}"


def test_every_response_carries_a_request_id_and_the_access_log_has_it(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="understudy.http"):
        mine = client.get("/health", headers={"X-Request-ID": "trace-42"})
        made = client.get("/health", headers={"X-Request-ID": "bad id\nwith newline"})
        missing = client.get("/v1/tasks/nope/quality")
    assert mine.headers["x-request-id"] == "trace-42"
    assert made.headers["x-request-id"] != "bad id\nwith newline" and len(made.headers["x-request-id"]) == 32
    assert missing.status_code == 401 and missing.headers["x-request-id"]
    records = [r for r in caplog.records if r.name == "understudy.http"]
    assert [getattr(r, "route", None) for r in records] == ["/health", "/health", "/v1/tasks/{task}/quality"]
    assert [getattr(r, "status", None) for r in records] == [200, 200, 401]


def test_json_log_lines_carry_the_request_id_and_the_fields() -> None:
    from service.logs import request_id

    token = request_id.set("abc")
    try:
        record = logging.LogRecord("understudy.http", logging.INFO, __file__, 1, "GET %s", ("/health",), None)
        record.route, record.status, record.duration_ms = "/health", 200, 1.5
        line = json.loads(JsonFormatter().format(record))
    finally:
        request_id.reset(token)
    assert line["request_id"] == "abc" and line["message"] == "GET /health" and line["level"] == "info"
    assert (line["route"], line["status"], line["duration_ms"]) == ("/health", 200, 1.5)

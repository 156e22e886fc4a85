"""Consistency checks on both stores: near-identical items with different final labels are found incrementally,
listed while their labels differ, and sent to adjudication by a lead (API and dashboard)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from service.config import Settings
from service.db import transaction
from service.jobs import worker
from service.jobs.context import WorkerContext
from service.pipeline.consistency import near_pairs
from service.store import consistency
from service.tables import Job
from tests.conftest import SPAM_TASK, assigned_reviewer, make_key

ADMIN = {"Authorization": "Bearer test-admin-key"}


def test_near_pairs_are_exact_symmetric_and_leave_out_self_pairs() -> None:
    vectors = np.array([[1.0, 0.0], [0.99, 0.01], [0.0, 1.0], [2.0, 0.0]], dtype=np.float32)
    pairs = near_pairs(
        new_ids=[10, 13], new_vectors=vectors[[0, 3]], ids=[10, 11, 12, 13], vectors=vectors, min_cosine=0.999
    )
    assert [(a, b) for a, b, _ in pairs] == [(10, 11), (10, 13), (11, 13)]
    assert pairs[1][2] == 1.0, "a duplicate at another scale is a duplicate"
    assert near_pairs(new_ids=[], new_vectors=vectors[:0], ids=[10], vectors=vectors[:1], min_cosine=0.9) == []


def _drain(ctx: WorkerContext) -> None:
    with transaction(ctx.sessions) as session:
        session.execute(update(Job).where(Job.state == "queued").values(not_before=None))
    while worker.run_once(ctx):
        pass


def _one_message_labeled_both_ways(
    client: TestClient, client_headers: dict[str, str], settings: Settings, fake_worker: WorkerContext
) -> None:
    """Two copies of one message in task "sms", reviewed as spam and as ham: one inconsistent pair to find."""
    client.post("/v1/tasks", json=SPAM_TASK, headers=client_headers)
    items = [{"id": f"d{i}", "text": "claim your cash reward"} for i in range(2)]
    client.post("/v1/tasks/sms/batches", json={"items": items}, headers=client_headers)
    _drain(fake_worker)
    reviewer = assigned_reviewer(client, settings)
    for label in ("spam", "ham"):
        item = client.post("/v1/tasks/sms/review/next", headers=reviewer).json()
        client.post(f"/v1/tasks/sms/review/{item['item_id']}/resolve", json={"label": label}, headers=reviewer)


def test_a_lead_finds_inconsistent_pairs_and_sends_them_to_adjudication(
    client: TestClient, client_headers: dict[str, str], settings: Settings, fake_worker: WorkerContext
) -> None:
    client.post("/v1/tasks", json=SPAM_TASK, headers=client_headers)
    texts = ["win a free prize now", "win a free prize now", "see you at lunch", "pick up the milk"]
    items = [{"id": f"m{i}", "text": text} for i, text in enumerate(texts)]
    client.post("/v1/tasks/sms/batches", json={"items": items}, headers=client_headers)
    _drain(fake_worker)
    reviewer = assigned_reviewer(client, settings)
    seen_prize = 0
    while (leased := client.post("/v1/tasks/sms/review/next", headers=reviewer)).status_code == 200:
        item = leased.json()
        label = "ham"
        if "prize" in item["text"]:
            seen_prize += 1
            label = "spam" if seen_prize == 1 else "ham"  # the same message, labeled two ways
        client.post(f"/v1/tasks/sms/review/{item['item_id']}/resolve", json={"label": label}, headers=reviewer)
    assert seen_prize == 2

    lead = make_key(settings, "lead")
    assert client.post("/v1/tasks/sms/consistency", headers=reviewer).status_code == 403
    assert client.post("/v1/tasks/sms/consistency?min_cosine=0.2", headers=lead).status_code == 422
    first = client.post("/v1/tasks/sms/consistency", headers=lead).json()
    assert (first["checked"], first["compared_with"], first["found"]) == (4, 4, 1)
    again = client.post("/v1/tasks/sms/consistency", headers=lead).json()
    assert (again["checked"], again["found"]) == (0, 0), "a check reads only what was labeled since the last"
    pairs = client.get("/v1/tasks/sms/consistency", headers=lead).json()
    assert len(pairs) == 1 and pairs[0]["cosine"] > 0.999
    assert {pairs[0]["first"]["label"], pairs[0]["second"]["label"]} == {"spam", "ham"}

    sent = client.post(f"/v1/tasks/sms/consistency/{pairs[0]['pair_id']}/adjudication", headers=lead)
    assert sent.status_code == 200
    assert client.post("/v1/tasks/sms/consistency/999999/adjudication", headers=lead).status_code == 404
    queue = client.get("/v1/tasks/sms/adjudication", headers=lead).json()
    assert {row["reason"] for row in queue} == {"inconsistency"} and len(queue) == 2
    assert client.get("/v1/tasks/sms/consistency", headers=lead).json() == [], "a sent pair leaves the list"
    for row in queue:
        done = client.post(f"/v1/tasks/sms/adjudication/{row['item_id']}", json={"label": "spam"}, headers=lead)
        assert done.status_code == 200


def test_the_dashboard_runs_a_check_and_sends_a_pair(
    client: TestClient, client_headers: dict[str, str], settings: Settings, fake_worker: WorkerContext
) -> None:
    _one_message_labeled_both_ways(client, client_headers, settings, fake_worker)
    plain = make_key(settings, "lead")["Authorization"][7:]
    client.post("/review/login", data={"key": plain})
    page = client.get("/ui/tasks/sms").text
    assert "No inconsistent pair open" in page
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    assert "form is stale" in client.post("/ui/tasks/sms/consistency", data={"csrf": "forged"}).text
    checked = client.post("/ui/tasks/sms/consistency", data={"csrf": csrf})
    assert "checked 2 items against 2: 1 new pairs" in checked.text and "claim your cash reward" in checked.text
    pair_id = re.search(r'/ui/tasks/sms/consistency/(\d+)"', checked.text).group(1)  # type: ignore[union-attr]
    data = client.get("/ui/tasks/sms/data/consistency.csv").text
    assert data.startswith("pair_id,cosine,first_item_id") and "claim your cash reward" in data
    sent = client.post(f"/ui/tasks/sms/consistency/{pair_id}", data={"csrf": csrf})
    assert "wait for adjudication" in sent.text and "2 to adjudicate" in sent.text
    assert "No inconsistent pair open" in sent.text


def test_a_large_check_runs_as_a_job_that_the_dashboard_shows(
    client: TestClient,
    client_headers: dict[str, str],
    settings: Settings,
    fake_worker: WorkerContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _one_message_labeled_both_ways(client, client_headers, settings, fake_worker)
    monkeypatch.setattr(consistency, "INLINE_COMPARISONS", 1)  # 2 new x 2 labeled: too large to run in the request
    lead = make_key(settings, "lead")
    queued = client.post("/v1/tasks/sms/consistency", headers=lead)
    assert queued.status_code == 202, queued.text
    body = queued.json()
    assert (body["state"], body["checked"], body["compared_with"], body["found"]) == ("queued", 2, 2, None)
    assert queued.headers["Location"] == body["job_url"]
    again = client.post("/v1/tasks/sms/consistency", headers=lead).json()
    assert again["job_id"] == body["job_id"], "asking again answers the check already queued"
    assert client.get("/v1/tasks/sms/consistency", headers=lead).json() == [], "no pair before the job ran"

    client.post("/review/login", data={"key": lead["Authorization"][7:]})
    page = client.get("/ui/tasks/sms").text
    assert f"A check is waiting for a worker (job {body['job_id']}" in page
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    from_page = client.post("/ui/tasks/sms/consistency", data={"csrf": csrf}).text
    assert f"runs in the background (job {body['job_id']})" in from_page

    _drain(fake_worker)
    job = client.get(body["job_url"], headers=lead).json()
    assert job["state"] == "done" and job["result"]["found"] == 1 and job["result"]["checked"] == 2
    assert len(client.get("/v1/tasks/sms/consistency", headers=lead).json()) == 1
    page = client.get("/ui/tasks/sms").text
    assert "A check is" not in page and "claim your cash reward" in page
    monkeypatch.setattr(consistency, "INLINE_COMPARISONS", 10**9)
    small = client.post("/v1/tasks/sms/consistency", headers=lead)
    assert small.status_code == 200 and small.json()["state"] == "done" and small.json()["checked"] == 0

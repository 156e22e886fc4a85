"""Guidelines as a versioned document, on both stores: version 1 from the task's instructions, a lead's revision
adds a version, each answer records its version, the review page renders them, the dashboard counts per version."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select, update

from service.config import Settings
from service.db import transaction
from service.jobs import worker
from service.jobs.context import WorkerContext
from service.tables import Job, ReviewVote
from tests.conftest import SPAM_TASK, assigned_reviewer, make_key


def _answer_one(client: TestClient, reviewer: dict[str, str]) -> None:
    item = client.post("/v1/tasks/sms/review/next", headers=reviewer).json()
    label = "spam" if "prize" in item["text"] else "ham"
    assert client.post(f"/v1/tasks/sms/review/{item['item_id']}/resolve", json={"label": label}, headers=reviewer)


def test_guidelines_are_versioned_and_each_answer_keeps_its_version(
    client: TestClient, client_headers: dict[str, str], settings: Settings, fake_worker: WorkerContext
) -> None:
    client.post("/v1/tasks", json=SPAM_TASK, headers=client_headers)
    items = [{"id": f"m{i}", "text": f"free prize {i}" if i % 2 else f"lunch at {i}"} for i in range(6)]
    client.post("/v1/tasks/sms/batches", json={"items": items}, headers=client_headers)
    with transaction(fake_worker.sessions) as session:
        session.execute(update(Job).where(Job.state == "queued").values(not_before=None))
    while worker.run_once(fake_worker):
        pass
    reviewer = assigned_reviewer(client, settings)
    first = client.get("/v1/tasks/sms/guidelines", headers=reviewer).json()
    assert (first["version"], first["text"], first["author"]) == (1, SPAM_TASK["instructions"], "task")
    _answer_one(client, reviewer)

    lead = make_key(settings, "lead")
    text = "Spam **advertises**: prizes, cash, *call now*.\n\n<script>alert(1)</script>"
    assert client.put("/v1/tasks/sms/guidelines", json={"text": text}, headers=reviewer).status_code == 403
    assert client.put("/v1/tasks/sms/guidelines", json={"text": "  "}, headers=lead).status_code == 422
    revised = client.put("/v1/tasks/sms/guidelines", json={"text": text}, headers=lead)
    assert revised.status_code == 201 and revised.json()["version"] == 2
    same = client.put("/v1/tasks/sms/guidelines", json={"text": text}, headers=lead)
    assert same.status_code == 200 and same.json()["version"] == 2, "the same text adds no version"
    assert [v["version"] for v in client.get("/v1/tasks/sms/guidelines/versions", headers=reviewer).json()] == [1, 2]
    task = client.get("/v1/tasks/sms", headers=client_headers).json()
    assert task["instructions"] == SPAM_TASK["instructions"], "the teacher's prompt keeps the instructions"
    _answer_one(client, reviewer)
    _answer_one(client, reviewer)
    with transaction(fake_worker.sessions) as session:
        versions = [v.guideline_version for v in session.scalars(select(ReviewVote).order_by(ReviewVote.id))]
    assert versions == [1, 2, 2]

    client.post("/review/login", data={"key": reviewer["Authorization"][7:]})
    page = client.get("/review/sms").text
    assert "<strong>advertises</strong>" in page and "version 2" in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page, "raw HTML is shown as text"
    client.cookies.clear()
    client.post("/review/login", data={"key": lead["Authorization"][7:]})
    table = client.get("/ui/tasks/sms/data/guidelines.json").json()
    assert [(row["version"], row["answers"]) for row in table] == [(1, 1), (2, 2)]
    assert "guidelines-panel" in client.get("/ui/tasks/sms").text

"""The lead's dashboard over HTTP, on both stores: who may see it, what it shows after reviews, its plots and the
data behind each one."""

from __future__ import annotations

import csv
import io

from fastapi.testclient import TestClient
from sqlalchemy import update

from service.config import Settings
from service.db import transaction
from service.jobs import worker
from service.jobs.context import WorkerContext
from service.tables import Job
from tests.conftest import SPAM_TASK, assigned_reviewer, make_key

ADMIN = {"Authorization": "Bearer test-admin-key"}


def _reviewed_task(
    client: TestClient, client_headers: dict[str, str], ctx: WorkerContext, settings: Settings
) -> list[dict[str, str]]:
    """60 messages scored by the keyword teacher; two reviewers answer what is queued, gold items twice."""
    client.post("/v1/tasks", json=SPAM_TASK, headers=client_headers)
    rows = [
        {
            "id": f"m{i}",
            "text": f"free prize {i}" if i % 3 == 0 else f"see you at lunch {i}",
            "meta": {"gold_label": "spam" if i % 3 == 0 else "ham"} if i < 8 else {},
        }
        for i in range(60)
    ]
    assert client.post("/v1/tasks/sms/batches", json={"items": rows}, headers=client_headers).status_code == 202
    client.put("/v1/tasks/sms/review/settings", json={"audit_reviewers": 1, "gold_reviewers": 2}, headers=ADMIN)
    reviewers = []
    for _ in range(2):
        reviewers.append(assigned_reviewer(client, settings))
    for _ in range(2):  # cold start holds the rest of the batch until its draws are reviewed
        with transaction(ctx.sessions) as session:
            session.execute(update(Job).where(Job.state == "queued").values(not_before=None))
        while worker.run_once(ctx):
            pass
        _answer_all(client, reviewers)
    return reviewers


def _answer_all(client: TestClient, reviewers: list[dict[str, str]]) -> None:
    """The first reviewer answers right; the second errs on every third answer."""
    for sloppy, headers in enumerate(reviewers):
        for turn in range(60):
            leased = client.post("/v1/tasks/sms/review/next", headers=headers)
            if leased.status_code == 204:
                break
            item = leased.json()
            right = "spam" if "prize" in item["text"] else "ham"
            wrong = "ham" if right == "spam" else "spam"
            label = wrong if sloppy and turn % 3 == 0 else right
            answer = client.post(
                f"/v1/tasks/sms/review/{item['item_id']}/resolve", json={"label": label}, headers=headers
            )
            assert answer.status_code == 200, answer.text


def _login(client: TestClient, role: str, settings: Settings) -> None:
    plain = make_key(settings, role)["Authorization"][7:]
    assert client.post("/review/login", data={"key": plain}, follow_redirects=False).status_code == 303


def test_a_lead_sees_progress_quality_reviewers_and_plots_with_their_data(
    client: TestClient, client_headers: dict[str, str], settings: Settings, fake_worker: WorkerContext
) -> None:
    reviewers = _reviewed_task(client, client_headers, fake_worker, settings)
    assert client.get("/ui/tasks/sms", follow_redirects=False).headers["location"] == "/review", "log in first"
    _login(client, "lead", settings)
    page = client.get("/ui/tasks/sms")
    assert page.status_code == 200, page.text
    for section in ("progress-panel", "quality-panel", "timeline-panel", "confusion-panel", "reviewers-panel"):
        assert f'id="{section}"' in page.text
    assert "60 in all" in page.text
    for chart in ("timeline", "confusion", "accuracy"):
        drawn = client.get(f"/ui/tasks/sms/charts/{chart}.svg")
        assert drawn.status_code == 200 and drawn.headers["content-type"] == "image/svg+xml"
        assert "<svg" in drawn.text and f"/ui/tasks/sms/charts/{chart}.svg" in page.text

    states = client.get("/ui/tasks/sms/data/states.json").json()
    assert sum(row["items"] for row in states) == 60
    confusion = client.get("/ui/tasks/sms/data/confusion.csv")
    assert confusion.headers["content-type"].startswith("text/csv")
    cells = list(csv.DictReader(io.StringIO(confusion.text)))
    assert {(c["human"], c["machine"]) for c in cells} == {(h, m) for h in ("ham", "spam") for m in ("ham", "spam")}
    reviewed = sum(int(c["items"]) for c in cells)
    resolved = next(row["items"] for row in states if row["state"] == "resolved")
    assert 0 < reviewed <= resolved

    rows = client.get("/ui/tasks/sms/data/reviewers.json").json()
    assert len(rows) == 2 and all(row["answers"] > 0 for row in rows)
    # Both answered the gold items; the one who errs on every third answer is estimated less accurate.
    estimated = sorted(rows, key=lambda row: row["estimated_accuracy"])
    assert estimated[0]["gold_accuracy"] < estimated[1]["gold_accuracy"]
    accuracy = client.get("/ui/tasks/sms/data/accuracy.json").json()
    assert [row["source"] for row in accuracy] == ["teacher, raw", "teacher, calibrated", "stacked labeler", "student"]
    uniform = next(row for row in accuracy if row["source"] == "teacher, raw")
    assert uniform["items"] > 0 and uniform["lower"] <= uniform["accuracy"] <= uniform["upper"]
    timeline = client.get("/ui/tasks/sms/data/timeline.json").json()
    coverage = [row for row in timeline if row["series"] == "coverage"]
    queued = next(row["items"] for row in states if row["state"] == "queued")
    assert queued == 0 and coverage[-1]["n"] >= 60

    # Figures are kept while nothing changes, and follow any change: an undone answer leaves the table at once.
    answers = {row["reviewer"]: row["answers"] for row in client.get("/ui/tasks/sms/data/reviewers.json").json()}
    name = client.get("/v1/review/me", headers=reviewers[0]).json()["name"]
    assert client.post("/v1/tasks/sms/review/undo", headers=reviewers[0]).status_code == 200
    after = {row["reviewer"]: row["answers"] for row in client.get("/ui/tasks/sms/data/reviewers.json").json()}
    assert after == {**answers, name: answers[name] - 1}


def test_the_dashboard_refuses_reviewers_and_answers_bad_names_clearly(
    client: TestClient, client_headers: dict[str, str], settings: Settings
) -> None:
    client.post("/v1/tasks", json=SPAM_TASK, headers=client_headers)
    _login(client, "reviewer", settings)
    refused = client.get("/ui/tasks/sms")
    assert refused.status_code == 403 and "leads and admins" in refused.text
    assert client.get("/ui/tasks/sms/data/states.json", follow_redirects=False).status_code == 403
    client.cookies.clear()
    _login(client, "lead", settings)
    empty = client.get("/ui/tasks/sms")
    assert empty.status_code == 200 and "No answers yet" in empty.text and "No student trained yet" in empty.text
    for chart in ("timeline", "confusion", "accuracy"):
        assert client.get(f"/ui/tasks/sms/charts/{chart}.svg").status_code == 200, "an empty task still draws"
    assert client.get("/ui/tasks/nope").status_code == 404
    missing = client.get("/ui/tasks/sms/data/nope.json")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    assert client.get("/ui/tasks/sms/charts/nope.svg").status_code == 404
    assert client.get("/ui/tasks/sms/data/states.xml").status_code == 422
    assert client.get("/ui/tasks/sms/data/states.csv").text.startswith("state,items")

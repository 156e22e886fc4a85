"""The review queue over HTTP: assignments, lease expiry, undo, k reviewers, adjudication, agreement, the login."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import select

from service.config import Settings
from service.db import make_engine, session_factory, transaction
from service.jobs import worker
from service.jobs.context import WorkerContext
from service.pipeline.sources import HUMAN_SOURCES
from service.tables import Label, ReviewVote
from tests.conftest import SPAM_TASK, make_key

ADMIN = {"Authorization": "Bearer test-admin-key"}


def _setup(client: TestClient, client_headers: dict[str, str], ctx: WorkerContext, *, gold: bool = False) -> None:
    client.post("/v1/tasks", json=SPAM_TASK, headers=client_headers)
    meta = {"gold_label": "spam"} if gold else {}
    items = [{"id": f"g{i}", "text": f"free prize {i}", "meta": meta} for i in range(6)]
    assert client.post("/v1/tasks/sms/batches", json={"items": items}, headers=client_headers).status_code == 202
    while worker.run_once(ctx):
        pass


def _reviewer(client: TestClient, settings: Settings, *, assign: bool = True) -> dict[str, str]:
    headers = make_key(settings, "reviewer")
    if assign:
        name = client.get("/v1/review/me", headers=headers).json()["name"]
        assert client.put(f"/v1/tasks/sms/reviewers/{name}", headers=ADMIN).status_code == 200
    return headers


def _labels(settings: Settings) -> list[Label]:
    engine = make_engine(settings.resolved_database_url)
    with transaction(session_factory(engine)) as session:
        rows = list(session.scalars(select(Label).where(Label.source.in_(HUMAN_SOURCES)).order_by(Label.id)))
    engine.dispose()
    return rows


def test_reviewers_see_only_assigned_tasks(
    client: TestClient, client_headers: dict[str, str], settings: Settings, fake_worker: WorkerContext
) -> None:
    _setup(client, client_headers, fake_worker)
    stranger = _reviewer(client, settings, assign=False)
    assert client.get("/v1/review/tasks", headers=stranger).json() == []
    refused = client.post("/v1/tasks/sms/review/next", headers=stranger)
    assert refused.status_code == 403 and refused.json()["field"] == "task"
    assert client.get("/v1/tasks/sms/review/agreement", headers=stranger).status_code == 403
    member = _reviewer(client, settings)
    assert [t["name"] for t in client.get("/v1/review/tasks", headers=member).json()] == ["sms"]
    assert client.post("/v1/tasks/sms/review/next", headers=member).status_code == 200
    assert [t["name"] for t in client.get("/v1/review/tasks", headers=ADMIN).json()] == ["sms"]
    assert client.put("/v1/tasks/sms/reviewers/nobody", headers=ADMIN).status_code == 404
    assert client.put("/v1/tasks/sms/reviewers/x", headers=member).status_code == 403
    name = client.get("/v1/review/me", headers=member).json()["name"]
    assert client.get("/v1/tasks/sms/reviewers", headers=ADMIN).json() == [name]
    assert client.delete(f"/v1/tasks/sms/reviewers/{name}", headers=ADMIN).status_code == 204
    assert client.post("/v1/tasks/sms/review/next", headers=member).status_code == 403


def test_expired_lease_returns_the_item_to_the_queue(
    client: TestClient, client_headers: dict[str, str], settings: Settings, fake_worker: WorkerContext
) -> None:
    _setup(client, client_headers, fake_worker)
    first, second = _reviewer(client, settings), _reviewer(client, settings)
    held = client.post("/v1/tasks/sms/review/next", headers=first).json()
    theirs = client.post("/v1/tasks/sms/review/next", headers=second).json()
    assert theirs["item_id"] != held["item_id"]
    client.post(f"/v1/tasks/sms/review/{theirs['item_id']}/resolve", json={"label": "ham"}, headers=second)
    client.app.state.settings.review_lease_s = -1.0  # type: ignore[attr-defined]
    expired = client.post("/v1/tasks/sms/review/next", headers=first).json()
    assert expired["item_id"] == held["item_id"]
    taken = client.post("/v1/tasks/sms/review/next", headers=second).json()
    assert taken["item_id"] == held["item_id"], "an expired lease is anyone's"


def test_undo_reopens_the_last_answer_and_keeps_history(
    client: TestClient, client_headers: dict[str, str], settings: Settings, fake_worker: WorkerContext
) -> None:
    _setup(client, client_headers, fake_worker)
    reviewer = _reviewer(client, settings)
    assert client.post("/v1/tasks/sms/review/undo", headers=reviewer).status_code == 404
    item = client.post("/v1/tasks/sms/review/next", headers=reviewer).json()
    voted = client.post(f"/v1/tasks/sms/review/{item['item_id']}/resolve", json={"label": "ham"}, headers=reviewer)
    assert voted.json()["status"] == "final"
    assert client.get("/v1/tasks/sms/review/progress", headers=reviewer).json()["reviewed"] == 1
    back = client.post("/v1/tasks/sms/review/undo", headers=reviewer)
    assert back.status_code == 200 and back.json()["item_id"] == item["item_id"]
    progress = client.get("/v1/tasks/sms/review/progress", headers=reviewer).json()
    assert progress["reviewed"] == 0 and progress["task"]["counts"]["review"] == 6
    other = _reviewer(client, settings)
    stolen = client.post(f"/v1/tasks/sms/review/{item['item_id']}/resolve", json={"label": "spam"}, headers=other)
    assert stolen.status_code == 409, "the reopened item is leased back to its reviewer"
    again = client.post(
        f"/v1/tasks/sms/review/{item['item_id']}/resolve",
        params={"next": True},
        json={"label": "spam"},
        headers=reviewer,
    )
    assert again.json()["status"] == "final"
    following = again.json()["next_item"]
    assert following["item_id"] != item["item_id"], "?next=true leases the next item in the same request"
    assert client.post("/v1/tasks/sms/review/next", headers=reviewer).json()["item_id"] == following["item_id"]
    assert [(row.item_id, row.label) for row in _labels(settings)] == [
        (item["item_id"], "ham"),
        (item["item_id"], "spam"),
    ]
    conflict = client.post(f"/v1/tasks/sms/review/{item['item_id']}/resolve", json={"label": "ham"}, headers=reviewer)
    assert conflict.status_code == 409 and conflict.json()["field"] == "label"


def test_gold_items_need_k_reviewers_and_disagreements_go_to_adjudication(
    client: TestClient, client_headers: dict[str, str], settings: Settings, fake_worker: WorkerContext
) -> None:
    _setup(client, client_headers, fake_worker, gold=True)
    k = client.put("/v1/tasks/sms/review/settings", json={"audit_reviewers": 2, "gold_reviewers": 2}, headers=ADMIN)
    assert k.status_code == 200
    alice, bob = _reviewer(client, settings), _reviewer(client, settings)
    answers = {"spam": "spam", "ham": "ham"}

    def answer(headers: dict[str, str], label: str) -> dict[str, object]:
        item = client.post("/v1/tasks/sms/review/next", headers=headers).json()
        assert item["kind"] == "gold" and item["required"] == 2
        result = client.post(
            f"/v1/tasks/sms/review/{item['item_id']}/resolve", json={"label": answers[label]}, headers=headers
        )
        assert result.status_code == 200, result.text
        return dict(result.json())

    first = answer(alice, "spam")
    assert first["status"] == "waiting" and first["votes"] == 1
    assert client.post("/v1/tasks/sms/review/next", headers=alice).json()["item_id"] != first["item_id"]
    assert answer(bob, "spam") == {**first, "status": "final", "votes": 2}
    # Alice holds a second item; she answers it, and Bob disagrees.
    disputed = answer(alice, "spam")
    assert answer(bob, "ham")["status"] == "adjudication"
    queue = client.get("/v1/tasks/sms/adjudication", headers=ADMIN).json()
    assert [row["item_id"] for row in queue] == [disputed["item_id"]]
    assert len(queue[0]["votes"]) == 2
    # Bob takes his answer back: the item leaves adjudication and returns to him.
    assert client.post("/v1/tasks/sms/review/undo", headers=bob).json()["item_id"] == disputed["item_id"]
    assert client.get("/v1/tasks/sms/adjudication", headers=ADMIN).json() == []
    assert answer(bob, "ham")["status"] == "adjudication"
    assert client.post(f"/v1/tasks/sms/adjudication/{disputed['item_id']}", json={"label": "spam"}).status_code == 401
    done = client.post(f"/v1/tasks/sms/adjudication/{disputed['item_id']}", json={"label": "spam"}, headers=ADMIN)
    assert done.status_code == 200
    assert client.post("/v1/tasks/sms/review/undo", headers=bob).status_code == 409, "adjudicated answers stay"
    report = client.get("/v1/tasks/sms/review/agreement", headers=alice).json()
    assert report["items_with_several_votes"] == 2
    assert report["pairs"][0]["items"] == 2 and report["pairs"][0]["observed"] == 0.5
    accuracy = {row["reviewer"]: row["gold"] for row in report["reviewers"]}
    assert sorted((row["items"], row["correct"]) for row in accuracy.values()) == [(2, 1), (2, 2)]
    final = {row.item_id: (row.label, row.source) for row in _labels(settings)}
    assert final == {first["item_id"]: ("spam", "human"), disputed["item_id"]: ("spam", "adjudicated")}


def test_login_sets_an_http_only_cookie_for_reviewers_only(
    client: TestClient, client_headers: dict[str, str], settings: Settings, fake_worker: WorkerContext
) -> None:
    _setup(client, client_headers, fake_worker)
    assert "Log in to review" in client.get("/review").text
    plain_client = client_headers["Authorization"][7:]
    assert client.post("/review/login", data={"key": plain_client}).status_code == 403
    assert client.post("/review/login", data={"key": "nope"}).status_code == 401
    stranger = _reviewer(client, settings, assign=False)
    response = client.post("/review/login", data={"key": stranger["Authorization"][7:]}, follow_redirects=False)
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
    assert "No task is assigned to you" in client.get("/review").text
    assert client.get("/review/sms").status_code == 403
    name = client.get("/v1/review/me").json()["name"]
    client.put(f"/v1/tasks/sms/reviewers/{name}", headers=ADMIN)
    page = client.get("/review", follow_redirects=True)
    assert page.url.path == "/review/sms" and "advertising" in page.text
    token = client.cookies["understudy_session"]
    assert token not in stranger["Authorization"] and stranger["Authorization"][7:] not in cookie, "no key in it"
    csrf = re.search(r'data-csrf="([^"]+)"', page.text)
    assert csrf is not None
    forged = client.post("/v1/tasks/sms/review/next")
    assert forged.status_code == 403 and "x-csrf-token" in forged.json()["detail"], "a change needs the CSRF token"
    assert client.get("/v1/tasks/sms/review/progress").status_code == 200, "a read needs none"
    made = client.post("/v1/tasks/sms/review/next", headers={"X-CSRF-Token": csrf.group(1)})
    assert made.status_code == 200, "the session authenticates the API"
    assert client.get("/review/static/review.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/review/static/secret.py").status_code == 404
    client.post("/review/logout", data={"csrf": "wrong"})
    assert "Log in to review" in client.get("/review").text, "the cookie is dropped either way"
    client.cookies.set("understudy_session", token)
    assert client.get("/review", follow_redirects=True).url.path == "/review/sms", "a forged logout ends nothing"
    client.post("/review/logout", data={"csrf": csrf.group(1)})
    client.cookies.set("understudy_session", token)
    ended = client.get("/v1/tasks/sms/review/progress")
    assert ended.status_code == 401 and "logged out" in ended.json()["detail"], "logout ends the session itself"
    votes = []
    engine = make_engine(settings.resolved_database_url)
    with transaction(session_factory(engine)) as session:
        votes = list(session.scalars(select(ReviewVote)))
    engine.dispose()
    assert votes == []


def test_revoking_a_key_ends_its_review_sessions(
    client: TestClient, client_headers: dict[str, str], settings: Settings, fake_worker: WorkerContext
) -> None:
    _setup(client, client_headers, fake_worker)
    reviewer = _reviewer(client, settings)
    client.post("/review/login", data={"key": reviewer["Authorization"][7:]})
    assert client.get("/v1/tasks/sms/review/progress").status_code == 200
    name = client.get("/v1/review/me").json()["name"]
    assert client.post(f"/v1/keys/{name}/revoke", headers=ADMIN).status_code == 200
    refused = client.get("/v1/tasks/sms/review/progress")
    assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
    assert "Log in to review" in client.get("/review").text

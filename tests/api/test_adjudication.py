"""Adjudication on both stores: disagreements and audits that contradict an accepted machine label wait for a
lead, who gives the final label on the adjudication page (recorded as adjudicated); a contradicting audit counts
as an audit at once."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import select, update

from service.config import Settings
from service.db import transaction
from service.jobs import worker
from service.jobs.context import WorkerContext
from service.store import history, tasks
from service.tables import DecisionRecord, Job, Label
from tests.conftest import SPAM_TASK, assigned_reviewer, make_key

ADMIN = {"Authorization": "Bearer test-admin-key"}
TEXTS = ("win a free prize", "see you at lunch", "claim your cash", "pick up milk")


def _drain(ctx: WorkerContext) -> None:
    with transaction(ctx.sessions) as session:
        session.execute(update(Job).where(Job.state == "queued").values(not_before=None))
    while worker.run_once(ctx):
        pass


def _uniform(ctx: WorkerContext) -> list[history.UniformReview]:
    with transaction(ctx.sessions) as session:
        return history.uniform_reviews(session, task_id=tasks.get_task(session, "sms").id)


def _right(text: str) -> str:
    return "spam" if any(word in text for word in ("prize", "cash")) else "ham"


def _answer(client: TestClient, headers: dict[str, str], choose: dict[str, str] | None = None) -> list[dict[str, str]]:
    """Answer everything waiting for this reviewer, right unless ``choose`` says otherwise (by item kind)."""
    results = []
    while (leased := client.post("/v1/tasks/sms/review/next", headers=headers)).status_code == 200:
        item = leased.json()
        label = (choose or {}).get(item["kind"]) or _right(item["text"])
        done = client.post(f"/v1/tasks/sms/review/{item['item_id']}/resolve", json={"label": label}, headers=headers)
        assert done.status_code == 200, done.text
        results.append({**done.json(), "kind": item["kind"], "right": _right(item["text"])})
    return results


def _lead(client: TestClient, settings: Settings) -> str:
    plain = make_key(settings, "lead")["Authorization"][7:]
    client.post("/review/login", data={"key": plain})
    page = client.get("/ui/tasks/sms/adjudication")
    assert page.status_code == 200
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    return found.group(1) if found else ""


def test_a_lead_settles_a_disagreement_on_the_page(
    client: TestClient, client_headers: dict[str, str], settings: Settings, fake_worker: WorkerContext
) -> None:
    client.post("/v1/tasks", json=SPAM_TASK, headers=client_headers)
    items = [{"id": f"g{i}", "text": f"free prize {i}", "meta": {"gold_label": "spam"}} for i in range(4)]
    client.post("/v1/tasks/sms/batches", json={"items": items}, headers=client_headers)
    _drain(fake_worker)
    client.put("/v1/tasks/sms/review/settings", json={"audit_reviewers": 2, "gold_reviewers": 2}, headers=ADMIN)
    alice, bob = assigned_reviewer(client, settings), assigned_reviewer(client, settings)
    _answer(client, alice)
    disputes = [r for r in _answer(client, bob, {"gold": "ham"}) if r["status"] == "adjudication"]
    assert len(disputes) == 4
    queue = client.get("/v1/tasks/sms/adjudication", headers=ADMIN).json()
    assert {row["reason"] for row in queue} == {"disagreement"}, queue
    assert all(row["machine"] in ("ham", "spam") for row in queue), "the machine had a label"

    csrf = _lead(client, settings)
    page = client.get("/ui/tasks/sms/adjudication").text
    assert "4 waiting" in page and "reviewers disagree" in page and "free prize" in page
    first = int(re.search(r'data-item-id="(\d+)"', page).group(1))  # type: ignore[union-attr]
    stale = client.post(f"/ui/tasks/sms/adjudication/{first}", data={"csrf": "forged", "label": "spam"})
    assert "the form is stale" in stale.text and "4 waiting" in stale.text, "a forged form changes nothing"
    wrong = client.post(f"/ui/tasks/sms/adjudication/{first}", data={"csrf": csrf, "label": "eggs"})
    assert "unknown label" in wrong.text.lower() or "eggs" in wrong.text
    settled = client.post(f"/ui/tasks/sms/adjudication/{first}", data={"csrf": csrf, "label": "spam"})
    assert f"#{first} spam: final" in settled.text and "3 waiting" in settled.text
    again = client.post(f"/ui/tasks/sms/adjudication/{first}", data={"csrf": csrf, "label": "ham"})
    assert "not waiting for adjudication" in again.text
    with transaction(fake_worker.sessions) as session:
        final = session.scalars(select(Label).where(Label.item_id == first).order_by(Label.id.desc())).first()
        assert final is not None and (final.source, final.label) == ("adjudicated", "spam")
    for _ in range(3):
        page = client.get("/ui/tasks/sms/adjudication").text
        item_id = re.search(r'data-item-id="(\d+)"', page).group(1)  # type: ignore[union-attr]
        client.post(f"/ui/tasks/sms/adjudication/{item_id}", data={"csrf": csrf, "label": "spam"})
    assert "Nothing is waiting" in client.get("/ui/tasks/sms/adjudication").text
    client.cookies.clear()
    reviewer_key = make_key(settings, "reviewer")["Authorization"][7:]
    client.post("/review/login", data={"key": reviewer_key})
    assert client.get("/ui/tasks/sms/adjudication").status_code == 403, "reviewers do not adjudicate"
    assert client.post(f"/ui/tasks/sms/adjudication/{first}", data={"csrf": "x", "label": "ham"}).status_code == 403


def test_an_audit_that_contradicts_an_accepted_label_counts_and_goes_to_a_lead(
    client: TestClient, client_headers: dict[str, str], settings: Settings, fake_worker: WorkerContext
) -> None:
    client.post("/v1/tasks", json={**SPAM_TASK, "audit_share": 0.3}, headers=client_headers)
    batch = [{"id": f"a{i}", "text": f"{TEXTS[i % 4]} {i}"} for i in range(300)]
    client.post("/v1/tasks/sms/batches", json={"items": batch}, headers=client_headers)
    rita = assigned_reviewer(client, settings)
    for _ in range(6):  # cold start: the batch waits for uniform draws, until a look certifies a threshold
        _drain(fake_worker)
        if client.get("/v1/tasks/sms/quality", headers=client_headers).json()["threshold"] is not None:
            break
        _answer(client, rita)
    quality = client.get("/v1/tasks/sms/quality", headers=client_headers).json()
    assert quality["threshold"] is not None, quality
    with transaction(fake_worker.sessions) as session:
        audits = [d for d in session.scalars(select(DecisionRecord)) if "audit_sample" in d.reasons]
        assert audits and all("would_accept" in d.signals for d in audits), "audits record what the policy would do"
        assert any(d.signals["would_accept"] for d in audits)

    answered = _answer(client, rita)
    assert answered  # the audits, answered right: nothing goes to a lead
    assert client.get("/v1/tasks/sms/adjudication", headers=ADMIN).json() == []
    more = [{"id": f"c{i}", "text": f"{TEXTS[i % 4]} {i}"} for i in range(100)]
    client.post("/v1/tasks/sms/batches", json={"items": more}, headers=client_headers)
    _drain(fake_worker)
    before = len([r for r in _uniform(fake_worker) if r.audit])
    contradicted = []
    while (leased := client.post("/v1/tasks/sms/review/next", headers=rita)).status_code == 200:
        item = leased.json()
        label = _right(item["text"])
        if item["kind"] == "audit":
            label = "ham" if label == "spam" else "spam"
        done = client.post(f"/v1/tasks/sms/review/{item['item_id']}/resolve", json={"label": label}, headers=rita)
        if item["kind"] == "audit":
            contradicted.append(done.json())
    sent = [r for r in contradicted if r["status"] == "adjudication"]
    assert sent, "an answer against a label the policy would accept goes to a lead"
    queue = client.get("/v1/tasks/sms/adjudication", headers=ADMIN).json()
    assert {row["item_id"] for row in queue} == {r["item_id"] for r in sent}
    assert {row["reason"] for row in queue} == {"audit_contradiction"}
    audits_now = [r for r in _uniform(fake_worker) if r.audit]
    assert len(audits_now) == before + len(contradicted), "the contradicting answer counts as an audit at once"
    assert sum(r.machine != r.human for r in audits_now) >= len(sent)

    # Undo takes the item back from the lead; answered again, it returns.
    undone = client.post("/v1/tasks/sms/review/undo", headers=rita).json()
    assert undone["item_id"] == contradicted[-1]["item_id"]
    waiting = {row["item_id"] for row in client.get("/v1/tasks/sms/adjudication", headers=ADMIN).json()}
    assert undone["item_id"] not in waiting
    client.post(
        f"/v1/tasks/sms/review/{undone['item_id']}/resolve", json={"label": contradicted[-1]["label"]}, headers=rita
    )

    csrf = _lead(client, settings)
    item_id = sent[0]["item_id"]
    machine = next(row["machine"] for row in queue if row["item_id"] == item_id)
    client.post(f"/ui/tasks/sms/adjudication/{item_id}", data={"csrf": csrf, "label": machine})
    settled = [r for r in _uniform(fake_worker) if r.item_id == item_id]
    assert settled and settled[0].human == machine, "the lead's label is the truth from now on"


def test_weighted_answers_settle_disagreements_and_a_weak_reviewer_gets_a_second_look(
    client: TestClient, client_headers: dict[str, str], settings: Settings, fake_worker: WorkerContext
) -> None:
    client.post("/v1/tasks", json=SPAM_TASK, headers=client_headers)
    gold = [
        {"id": f"g{i}", "text": f"{TEXTS[i % 4]} {i}", "meta": {"gold_label": _right(TEXTS[i % 4])}} for i in range(16)
    ]
    client.post("/v1/tasks/sms/batches", json={"items": gold}, headers=client_headers)
    _drain(fake_worker)
    changed = client.put(
        "/v1/tasks/sms/review/settings",
        json={"audit_reviewers": 1, "gold_reviewers": 3, "second_review_below": 0.8, "aggregate_at": None},
        headers=ADMIN,
    )
    assert changed.json() == {
        "audit_reviewers": 1,
        "gold_reviewers": 3,
        "second_review_below": 0.8,
        "aggregate_at": None,
    }
    bad = client.put("/v1/tasks/sms/review/settings", json={"aggregate_at": 0.4}, headers=ADMIN)
    assert bad.status_code == 422, "an aggregate below one half would settle nothing"
    careful, steady, weak = (assigned_reviewer(client, settings) for _ in range(3))
    _answer(client, careful)
    _answer(client, steady)
    results = []
    for turn in range(16):  # the weak reviewer errs on every other gold item
        if turn == 8:  # first every disagreement goes to a lead; then the weighted answer may settle it
            settled = {"audit_reviewers": 1, "gold_reviewers": 3, "second_review_below": 0.8, "aggregate_at": 0.95}
            client.put("/v1/tasks/sms/review/settings", json=settled, headers=ADMIN)
            assert all(status == "adjudication" for status, _, _ in results[::2])
        leased = client.post("/v1/tasks/sms/review/next", headers=weak).json()
        right = _right(leased["text"])
        label = ("ham" if right == "spam" else "spam") if turn % 2 == 0 else right
        done = client.post(f"/v1/tasks/sms/review/{leased['item_id']}/resolve", json={"label": label}, headers=weak)
        results.append((done.json()["status"], leased["item_id"], right))
    assert [status for status, _, _ in results[9::2]] == ["final"] * 4, "two proven reviewers against one settle it"
    with transaction(fake_worker.sessions) as session:
        weighted = [
            (label.item_id, label.label)
            for label in session.scalars(select(Label).where(Label.reviewer.like("%(weighted)")))
        ]
    truth = {item_id: right for _, item_id, right in results}
    assert weighted and all(label == truth[item_id] for item_id, label in weighted)

    agreement = client.get("/v1/tasks/sms/review/agreement", headers=ADMIN).json()
    estimates = {row["reviewer"]: row["estimated_accuracy"] for row in agreement["reviewers"]}
    weak_name = client.get("/v1/review/me", headers=weak).json()["name"]
    assert estimates[weak_name] < 0.8 < min(v for k, v in estimates.items() if k != weak_name)

    # Review items: the weak reviewer's answer waits for a second one; a careful reviewer's settles at once.
    more = [{"id": f"r{i}", "text": f"{TEXTS[i % 4]} r{i}"} for i in range(6)]
    client.post("/v1/tasks/sms/batches", json={"items": more}, headers=client_headers)
    _drain(fake_worker)
    first = _answer(client, weak)
    assert first and {r["status"] for r in first} == {"waiting"}
    second = _answer(client, careful)
    assert {r["item_id"] for r in second} >= {r["item_id"] for r in first}
    assert all(r["status"] in ("final", "adjudication") for r in second)

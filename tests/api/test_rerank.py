"""The review queue is ranked again as reviews come in: every RERANK_EVERY human labels queue one rerank_queue job,
which refits the labeler on them and moves up the items whose machine label it now doubts; the next waits in
proportion to how long the last took. On both stores."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from service import db
from service.jobs.context import WorkerContext
from service.pipeline.review_order import RERANK_EVERY
from service.store import review
from service.tables import Item, Job, ReviewEntry
from tests.api.test_loop import HAM, SPAM, _assign, _drain_without_waiting
from tests.conftest import SPAM_TASK

TASK = {**SPAM_TASK, "review_budget": 59}
"""Too small a budget for any look (see test_certification): nothing is drawn at random, every item waits for
review by its chance of being wrong."""


def _rerank_jobs(ctx: WorkerContext, state: str) -> int:
    with db.transaction(ctx.sessions) as session:
        return int(
            session.scalar(
                select(func.count()).select_from(Job).where(Job.kind == review.RERANK_JOB, Job.state == state)
            )
            or 0
        )


def _queue(ctx: WorkerContext) -> list[tuple[str, str]]:
    """(external id, explanation) of the items waiting for review, in the order reviewers get them."""
    with db.transaction(ctx.sessions) as session:
        return [
            (str(name), explanation)
            for name, explanation in session.execute(
                select(Item.external_id, ReviewEntry.explanation)
                .join(Item, Item.id == ReviewEntry.item_id)
                .order_by(ReviewEntry.priority.desc(), ReviewEntry.item_id)
            )
        ]


def test_reviews_rank_the_queue_again_by_the_refitted_labeler(
    client: TestClient, client_headers: dict[str, str], reviewer_headers: dict[str, str], fake_worker: WorkerContext
) -> None:
    """Invoices carry no spam word, so the keyword teacher calls them ham, sure of it, as it is of real ham, and
    routing ranks a few of them below ham; the reviewer says spam. Once invoices are answered, the job puts every
    invoice left ahead of every ham."""
    assert client.post("/v1/tasks", json=TASK, headers=client_headers).status_code == 201
    _assign(client, reviewer_headers)
    rows = [(f"s{i}", f"{SPAM[i % len(SPAM)]} {i}", "spam") for i in range(20)]
    rows += [(f"h{i}", f"{HAM[i % len(HAM)]} {i}", "ham") for i in range(40)]
    rows += [(f"v{i}", f"quarterly invoice attached ref {i}", "spam") for i in range(20)]
    gold = {item_id: label for item_id, _, label in rows}
    client.post(
        "/v1/tasks/sms/batches", json={"items": [{"id": i, "text": t} for i, t, _ in rows]}, headers=client_headers
    )
    fake_worker.settings.worker_poll_s = 0
    _drain_without_waiting(fake_worker)

    def answer(count: int) -> list[dict[str, object]]:
        served = []
        for _ in range(count):
            item = client.post("/v1/tasks/sms/review/next", headers=reviewer_headers).json()
            served.append(item)
            resolved = client.post(
                f"/v1/tasks/sms/review/{item['item_id']}/resolve",
                json={"label": gold[str(item["external_id"])]},
                headers=reviewer_headers,
            )
            assert resolved.status_code == 200, resolved.text
        return served

    first = answer(4 * RERANK_EVERY + 5)
    assert not any("cold_start" in item["reasons"] for item in first), "a budget this small draws nothing"
    assert {str(item["external_id"])[0] for item in first} == {"h", "s", "v"}, "every kind was answered"
    assert _rerank_jobs(fake_worker, "queued") == 1, "one waiting job serves every label before it runs"
    before = _queue(fake_worker)
    late = [i for i, (name, _) in enumerate(before) if name.startswith("v")]
    assert late and max(late) > min(i for i, (name, _) in enumerate(before) if name.startswith("h")), (
        "routing ranked some invoices below ham"
    )

    _drain_without_waiting(fake_worker)
    assert _rerank_jobs(fake_worker, "done") == 1 and _rerank_jobs(fake_worker, "queued") == 0
    after = _queue(fake_worker)
    invoices = [i for i, (name, _) in enumerate(after) if name.startswith("v")]
    hams = [i for i, (name, _) in enumerate(after) if name.startswith("h")]
    assert invoices and hams and max(invoices) < min(hams), after
    assert all("Ranked again after 45 human labels" in explanation for _, explanation in after)

    served = answer(len(invoices))
    assert all(str(item["external_id"]).startswith("v") for item in served), "reviewers get the invoices next"

    answer(RERANK_EVERY)
    with db.transaction(fake_worker.sessions) as session:
        done, waiting = session.scalars(select(Job).where(Job.kind == review.RERANK_JOB).order_by(Job.id)).all()
    assert waiting.state == "queued" and waiting.not_before is not None
    paused = (waiting.not_before - waiting.created_at).total_seconds()
    assert paused >= review.RERANK_PACE * done.result["seconds"] - 0.01, "the next waits in proportion to the last"

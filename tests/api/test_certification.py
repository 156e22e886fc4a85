"""The guarantee as the running service applies it: a labeler fitted before its look is certified on confidences
recomputed with it from the stored inputs of the uniform reviews labeled after it (its fresh slice), and uniform
draws are served blind. On both stores."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service import db, task_policy
from service.jobs.context import WorkerContext
from service.pipeline.certification import SliceFloor, look_delta, look_size
from service.pipeline.policy import fit_policy
from service.pipeline.probe import Probe, ProbeInput
from service.pipeline.stacking import Stack
from service.store import history, labelers, review, tasks
from service.tables import LabelerVersion
from tests.api.test_loop import _assign, _dataset, _drain_without_waiting, _review_all
from tests.conftest import SPAM_TASK

TASK = {**SPAM_TASK, "epsilon": 0.1, "delta": 0.1, "audit_share": 0.3}
SEED_REVIEWS = 40
"""Cold-start draws waiting at a time in the tests' settings."""


def _teacher_candidate(
    ctx: WorkerContext,
    *,
    bias: tuple[float, float],
    delta_spent: float,
    look_size: int | None,
    floor: float,
    floor_share: float | None,
) -> None:
    """Look 0 of task "sms", fitted on nothing yet: the teacher's scores shifted by ``bias``."""
    with db.transaction(ctx.sessions) as session:
        labelers.add_candidate(
            session,
            task_id=tasks.get_task(session, "sms").id,
            look=0,
            stack={"sources": ["teacher"], "weights": [1.0], "bias": list(bias)},
            probe=None,
            delta_spent=delta_spent,
            look_size=look_size,
            floor=floor,
            floor_share=floor_share,
            sure_share=floor_share,
            fitted_on=0,
            fitted_through=0,
            expected_slice=None,
        )


def _certified(ctx: WorkerContext) -> object | None:
    with db.transaction(ctx.sessions) as session:
        return labelers.latest(session, task_id=tasks.get_task(session, "sms").id, certified=True)


def test_threshold_is_certified_on_recomputed_confidences_and_audits_are_blind(
    client: TestClient, client_headers: dict[str, str], reviewer_headers: dict[str, str], fake_worker: WorkerContext
) -> None:
    assert client.post("/v1/tasks", json=TASK, headers=client_headers).status_code == 201
    _assign(client, reviewer_headers)
    data = _dataset(500, seed=3)
    gold = {item_id: label for item_id, _, label in data}
    batch = client.post(
        "/v1/tasks/sms/batches", json={"items": [{"id": i, "text": t} for i, t, _ in data]}, headers=client_headers
    ).json()
    fake_worker.settings.worker_poll_s = 0
    for _ in range(40):
        _drain_without_waiting(fake_worker)
        if _certified(fake_worker) is not None:
            break
        _review_all(client, reviewer_headers, gold)
    with db.transaction(fake_worker.sessions) as session:
        task = tasks.get_task(session, "sms")
        row = labelers.latest(session, task_id=task.id, certified=True)
        assert row is not None, "the cold-start reviews certify a threshold"
        uniform = history.uniform_reviews(session, task_id=task.id)
    assert row.fitted_through is not None and row.looked_at is not None and row.floor_share is not None
    fresh = [r for r in uniform if r.label_id > row.fitted_through]
    seen_by_it = [r for r in uniform if r.label_id <= row.fitted_through]
    assert len(seen_by_it) >= look_size(0, epsilon=0.1, delta=0.1, min_reviews=30, target_coverage=None)
    assert row.fitted_on == sum(r.current_regime for r in seen_by_it), "fitted on every label there was"
    assert row.delta_spent == pytest.approx(look_delta(row.look, delta=0.1)), "no budget: each look takes half"
    floor = SliceFloor(floor=row.floor, share=row.floor_share, sure_share=row.sure_share or 0.0)
    size = look_size(row.look, epsilon=0.1, delta=0.1, min_reviews=30, target_coverage=floor.accepted_share(None))
    assert row.look_size == size

    # Recompute the certifying items' confidences with the stored labeler from their stored inputs.
    stack = Stack.from_json(row.stack)
    inputs = {"teacher": np.asarray([r.raw_probs for r in fresh])}
    if row.probe is not None:
        items = ProbeInput.of(np.asarray([r.embedding for r in fresh]), [r.text for r in fresh])
        inputs["probe"] = Probe.from_json(row.probe).predict(items)
    probs = stack.apply(inputs)
    assert not np.allclose(probs.max(axis=1), inputs["teacher"].max(axis=1)), "the labeler is not the raw teacher"
    in_slice = probs.max(axis=1) >= row.floor
    reviews = [r for r, keep in zip(fresh, in_slice, strict=True) if keep]
    assert len(reviews) == row.certified_on >= size, "tested on its whole slice, once it reached the look's size"
    names = ("ham", "spam")
    again = fit_policy(
        confidences=probs[in_slice].max(axis=1),
        correct=probs[in_slice].argmax(axis=1) == np.asarray([names.index(r.human) for r in reviews]),
        vetoed=[r.vetoed for r in reviews],
        epsilon=0.1,
        delta=row.delta_spent,
        min_reviews=30,
        start_share=floor.accepted_share(None),
        floor=row.floor,
    )
    assert (again.threshold, again.error_bound) == (row.threshold, row.error_bound)
    assert row.threshold is not None and row.threshold >= row.floor

    # Items routed after the look: a share of them are audits, leased without the machine's answer.
    _drain_without_waiting(fake_worker)
    seen = {"audit": 0, "other": 0}
    while (response := client.post("/v1/tasks/sms/review/next", headers=reviewer_headers)).status_code == 200:
        item = response.json()
        uniform = "audit_sample" in item["reasons"] or "cold_start" in item["reasons"]
        assert item["blind"] is uniform
        if uniform:
            assert item["suggestion"] is None and item["confidence"] is None and item["probs"] == {}
        else:
            assert item["suggestion"] in names
        seen["audit" if "audit_sample" in item["reasons"] else "other"] += 1
        client.post(
            f"/v1/tasks/sms/review/{item['item_id']}/resolve",
            json={"label": gold[item["external_id"]]},
            headers=reviewer_headers,
        )
    assert seen["audit"] > 0
    quality = client.get("/v1/tasks/sms/quality", headers=client_headers).json()
    assert quality["labeler"]["look"] == row.look and quality["threshold"] == row.threshold
    assert quality["audit_reviews"] == seen["audit"] + sum(r.audit for r in reviews)
    status = client.get(batch["url"], headers=client_headers).json()
    assert status["counts"]["accepted"] > 0


def test_cold_start_draws_nothing_for_a_look_beyond_the_review_budget(
    client: TestClient, client_headers: dict[str, str], fake_worker: WorkerContext
) -> None:
    """The first look needs uniform reviews to fit a candidate on and fresh ones to test it. A budget that cannot
    pay for m + m (m = 58 here) splits in two halves, the look at all of delta; one whose half is below
    min_reviews (30) cannot pay for any look, so no item is drawn at random and the budget goes to the likeliest
    errors."""
    first = look_size(0, epsilon=0.1, delta=0.1, min_reviews=30, target_coverage=None)
    budgets = {"small": 59, "halved": 60, "large": 10 * first}
    for name, budget in budgets.items():
        task = {**TASK, "name": name, "review_budget": budget}
        assert client.post("/v1/tasks", json=task, headers=client_headers).status_code == 201
    with db.transaction(fake_worker.sessions) as session:
        policies = {
            name: task_policy.applied(session, tasks.get_task(session, name), reviews=[], min_reviews=30).policy
            for name in budgets
        }
    assert not policies["small"].uniform_draws and policies["halved"].uniform_draws and policies["large"].uniform_draws
    assert all(p.threshold is None for p in policies.values())


def test_a_budget_that_pays_for_one_look_takes_it_at_all_of_delta(
    client: TestClient, client_headers: dict[str, str], reviewer_headers: dict[str, str], fake_worker: WorkerContext
) -> None:
    """A budget of 80 cannot pay for two looks of 58: the first candidate is fitted on 40 uniform reviews and its
    look waits for the next 40, at all of delta (0.1), not at the 0.05 an unbudgeted first look would take."""
    assert client.post("/v1/tasks", json={**TASK, "review_budget": 80}, headers=client_headers).status_code == 201
    _assign(client, reviewer_headers)
    data = _dataset(500, seed=4)
    gold = {item_id: label for item_id, _, label in data}
    client.post(
        "/v1/tasks/sms/batches", json={"items": [{"id": i, "text": t} for i, t, _ in data]}, headers=client_headers
    )
    fake_worker.settings.worker_poll_s = 0
    for _ in range(40):
        _drain_without_waiting(fake_worker)
        with db.transaction(fake_worker.sessions) as session:
            looked = labelers.looks_done(session, task_id=tasks.get_task(session, "sms").id)
        if looked:
            break
        _review_all(client, reviewer_headers, gold)
    with db.transaction(fake_worker.sessions) as session:
        task = tasks.get_task(session, "sms")
        row = labelers.latest(session, task_id=task.id)
        first = session.scalar(
            select(LabelerVersion).where(LabelerVersion.task_id == task.id, LabelerVersion.look == 0)
        )
        humans = review.human_count(session, task_id=task.id)
        candidates = labelers.looks_done(session, task_id=task.id)
        spent = labelers.delta_spent(session, task_id=task.id)
    assert candidates == 1 and row is not None and first is not None
    assert first.look_size == 40 and first.fitted_on == 40
    assert first.delta_spent == pytest.approx(0.1) and spent == pytest.approx(0.1)
    assert first.certified_on >= 40 and humans == 80, "the budget went to the two halves"
    assert row.look == 1 and row.look_size is None, "the budget pays for no look after it"


def test_cold_start_draws_only_items_the_candidate_could_accept(
    client: TestClient, client_headers: dict[str, str], reviewer_headers: dict[str, str], fake_worker: WorkerContext
) -> None:
    """A candidate whose slice floor is 0.9, unsure of ham (0.81) and sure of spam (0.996): in cold start, spam
    items are the uniform draws, shown blind and first; ham items wait for review by their chance of being wrong,
    not blind, and hold no draw back."""
    assert client.post("/v1/tasks", json=TASK, headers=client_headers).status_code == 201
    _assign(client, reviewer_headers)
    _teacher_candidate(fake_worker, bias=(-2.0, 0.0), delta_spent=0.05, look_size=1000, floor=0.9, floor_share=0.4)
    data = _dataset(120, seed=5)
    client.post(
        "/v1/tasks/sms/batches", json={"items": [{"id": i, "text": t} for i, t, _ in data]}, headers=client_headers
    )
    fake_worker.settings.worker_poll_s = 0
    _drain_without_waiting(fake_worker)
    served = []
    while (response := client.post("/v1/tasks/sms/review/next", headers=reviewer_headers)).status_code == 200:
        item = response.json()
        served.append(item)
        client.post(f"/v1/tasks/sms/review/{item['item_id']}/resolve", json={"label": "ham"}, headers=reviewer_headers)
    gold = {i: label for i, _, label in data}
    draws = [s for s in served if "cold_start" in s["reasons"]]
    below = [s for s in served if "below_floor" in s["reasons"]]
    assert draws and below and len(draws) + len(below) == len(served)
    assert all(gold[s["external_id"]] == "spam" and s["blind"] for s in draws)
    assert all(gold[s["external_id"]] == "ham" and not s["blind"] and s["suggestion"] == "ham" for s in below)
    assert served.index(below[0]) > served.index(draws[-1]), "the draws come first"
    assert len(draws) <= SEED_REVIEWS < len(below), "items below the floor do not count against the waiting draws"


def test_a_candidate_with_nothing_in_reach_retires_for_one_fitted_on_newer_labels(
    client: TestClient, client_headers: dict[str, str], reviewer_headers: dict[str, str], fake_worker: WorkerContext
) -> None:
    """No slice floor (its cross-fitted error reached epsilon everywhere): it gets no look, spends nothing, and once
    min_reviews new human labels have come, the next candidate is fitted on them."""
    assert client.post("/v1/tasks", json=TASK, headers=client_headers).status_code == 201
    _assign(client, reviewer_headers)
    _teacher_candidate(fake_worker, bias=(0.0, 0.0), delta_spent=0.0, look_size=None, floor=0.0, floor_share=None)
    data = _dataset(80, seed=6)
    gold = {item_id: label for item_id, _, label in data}
    client.post(
        "/v1/tasks/sms/batches", json={"items": [{"id": i, "text": t} for i, t, _ in data]}, headers=client_headers
    )
    fake_worker.settings.worker_poll_s = 0
    for _ in range(5):
        _drain_without_waiting(fake_worker)
        _review_all(client, reviewer_headers, gold)
    with db.transaction(fake_worker.sessions) as session:
        task = tasks.get_task(session, "sms")
        newest = labelers.latest(session, task_id=task.id)
        spent = labelers.delta_spent(session, task_id=task.id)
    assert newest is not None and newest.look >= 1 and newest.fitted_on >= 30, "refitted on the new labels"
    assert spent == 0.0, "retiring spends none of delta"

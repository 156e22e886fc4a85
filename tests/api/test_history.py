"""Read models over the history, on both stores."""

from __future__ import annotations

import numpy as np
from sqlalchemy.orm import Session

from service import db
from service.api.schemas.tasks import TaskCreate
from service.config import Settings
from service.db import transaction
from service.store import history, tasks
from service.tables import Batch, DecisionRecord, Item, Label, Prediction, Task


def _scored_items(
    session: Session, rows: list[tuple[list[float], list[str]]], *, state: str
) -> tuple[Task, list[Item]]:
    """Task "t" (labels a, b) with one item per (teacher raw scores, routing reasons) row, each scored "b" by the
    teacher and routed to review for those reasons."""
    task = tasks.create_task(
        session, TaskCreate.model_validate({"name": "t", "labels": [{"name": "a"}, {"name": "b"}]})
    )
    batch = Batch(task_id=task.id, request_sha="0" * 64, item_count=len(rows))
    session.add(batch)
    session.flush()
    created = []
    for index, (raw, why) in enumerate(rows):
        embedding = np.ones(4, dtype=np.float32).tobytes()
        item = Item(
            task_id=task.id, batch_id=batch.id, external_id=f"i{index}", text="x", state=state, embedding=embedding
        )
        session.add(item)
        session.flush()
        prediction = Prediction(
            item_id=item.id, source="teacher", model="m", raw_probs=raw, probs=raw, label="b", confidence=raw[1]
        )
        session.add(prediction)
        session.flush()
        session.add(
            DecisionRecord(
                item_id=item.id, prediction_id=prediction.id, accept=False, reasons=why, signals={"shots": 4}
            )
        )
        created.append(item)
    return task, created


def test_only_reviews_drawn_at_random_are_uniform_reviews(settings: Settings) -> None:
    sessions = db.open(settings)
    reasons = [["cold_start"], ["low_margin"], ["audit_sample"], ["low_margin", "neighbour_disagreement"]]
    rows = [([0.1 * (i + 1), 1 - 0.1 * (i + 1)], why) for i, why in enumerate(reasons)]
    with transaction(sessions) as session:
        task, created = _scored_items(session, rows, state="resolved")
        for item in created:
            session.add(Label(item_id=item.id, task_id=task.id, label="a", source="human"))
    with transaction(sessions) as session:
        uniform = history.uniform_reviews(session, task_id=task.id)
    # The cold-start draw and the audit, not the two items queued because they looked wrong.
    assert sorted(round(r.raw_probs[0], 1) for r in uniform) == [0.1, 0.3]
    assert [r.audit for r in uniform] == [False, True] and all(r.human == "a" and r.machine == "b" for r in uniform)
    db.engine_of(sessions).dispose()


def test_training_gold_is_sampled_unless_the_service_picked_it_for_looking_wrong(settings: Settings) -> None:
    """The student's threshold is certified only on sampled gold: uniform draws and labels of items never routed
    (imported with their labels), not the items queued because they looked wrong."""
    sessions = db.open(settings)
    reasons = [["cold_start"], ["below_threshold"], ["audit_sample"], ["low_margin", "neighbour_disagreement"]]
    with transaction(sessions) as session:
        task, created = _scored_items(session, [([0.4, 0.6], why) for why in reasons], state="resolved")
        imported = Item(
            task_id=task.id, batch_id=created[0].batch_id, external_id="imported", text="y", state="resolved"
        )
        session.add(imported)
        session.flush()
        for item in [*created, imported]:
            session.add(Label(item_id=item.id, task_id=task.id, label="a", source="human"))
    with transaction(sessions) as session:
        rows = {row.item_id: row.sampled for row in history.training_rows(session, task_id=task.id)}
    assert [rows[item.id] for item in created] == [True, False, True, False]
    assert rows[imported.id] is True


def test_a_newly_certified_labeler_accepts_the_queued_items_it_is_sure_of(settings: Settings) -> None:
    """Re-scoring: items waiting because they looked doubtful leave the queue with the reason ``rescored`` when
    the certified labeler is sure of them; uniform draws stay, whatever their score."""
    from service import task_policy
    from service.store import labelers, review
    from service.tables import ReviewEntry

    sessions = db.open(settings)
    # The teacher's raw scores: sure of "b" (0.9), unsure (0.55), and a cold-start draw sure of "b".
    rows = [([0.1, 0.9], ["below_threshold"]), ([0.45, 0.55], ["below_threshold"]), ([0.1, 0.9], ["cold_start"])]
    with transaction(sessions) as session:
        task, created = _scored_items(session, rows, state="review")
        for item in created:
            review.enqueue(session, item=item, priority=0.5, explanation="")
        candidate = labelers.add_candidate(
            session,
            task_id=task.id,
            look=0,
            stack={"sources": ["teacher"], "weights": [1.0], "bias": [0.0, 0.0]},
            probe=None,
            delta_spent=0.05,
            look_size=40,
            floor=0.0,
            floor_share=1.0,
            sure_share=1.0,
            fitted_on=40,
            fitted_through=0,
            expected_slice=None,
        )
        assert candidate is not None
        assert labelers.record_look(session, candidate, threshold=0.8, error_bound=0.04, certified_on=40)
        assert not labelers.record_look(session, candidate, threshold=0.5, error_bound=0.09, certified_on=80), (
            "a look is taken once"
        )
    with transaction(sessions) as session:
        task = tasks.get_task(session, "t")
        now = task_policy.applied(
            session, task, reviews=history.uniform_reviews(session, task_id=task.id), min_reviews=30
        )
        assert now.policy.threshold == 0.8
        assert task_policy.rescore_queue(session, task, now) == 1
    with transaction(sessions) as session:
        waiting = {entry.item_id for entry in session.query(ReviewEntry)}
        states = {item.external_id: item.state for item in session.query(Item)}
        accepted = session.query(Label).one()
        decision = session.query(DecisionRecord).order_by(DecisionRecord.id.desc()).first()
    assert states == {"i0": "accepted", "i1": "review", "i2": "review"} and len(waiting) == 2
    assert accepted.label == "b" and accepted.source == "teacher" and abs(accepted.confidence - 0.9) < 1e-9
    assert decision is not None and decision.accept and decision.reason_names == ["rescored"]
    db.engine_of(sessions).dispose()

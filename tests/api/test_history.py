"""Read models over the history, on both stores."""

from __future__ import annotations

from service import db
from service.api.schemas.tasks import TaskCreate
from service.config import Settings
from service.db import transaction
from service.store import history, tasks
from service.tables import Batch, DecisionRecord, Item, Label, Prediction


def test_only_reviews_drawn_at_random_are_uniform_reviews(settings: Settings) -> None:
    sessions = db.open(settings)
    reasons = [["cold_start"], ["low_margin"], ["audit_sample"], ["low_margin", "neighbour_disagreement"]]
    with transaction(sessions) as session:
        task = tasks.create_task(
            session, TaskCreate.model_validate({"name": "t", "labels": [{"name": "a"}, {"name": "b"}]})
        )
        batch = Batch(task_id=task.id, request_sha="0" * 64, item_count=len(reasons))
        session.add(batch)
        session.flush()
        for index, why in enumerate(reasons):
            item = Item(task_id=task.id, batch_id=batch.id, external_id=f"i{index}", text="x", state="resolved")
            session.add(item)
            session.flush()
            raw = [0.1 * (index + 1), 1 - 0.1 * (index + 1)]
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
            session.add(Label(item_id=item.id, task_id=task.id, label="a", source="human"))
    with transaction(sessions) as session:
        uniform = history.uniform_reviews(session, task_id=task.id)
    # The cold-start draw and the audit, not the two items queued because they looked wrong.
    assert sorted(round(r.raw_probs[0], 1) for r in uniform) == [0.1, 0.3]
    assert [r.audit for r in uniform] == [False, True] and all(r.human == "a" and r.machine == "b" for r in uniform)
    db.engine_of(sessions).dispose()

"""task_policy.rank_queue: a waiting item ranks by the chance that the label routing gave it is wrong, under the
labeler refitted now; items routed before density was recorded get it measured among the queue."""

from __future__ import annotations

import numpy as np

from service.pipeline.pool import LabeledPool
from service.store.items import QueuedForReview
from service.tables import Prediction, Task
from service.task_policy import rank_queue


def _queued(item_id: int, routed: str, density: float | None) -> QueuedForReview:
    prediction = Prediction(raw_probs=[0.3, 0.7], probs=[0.3, 0.7], label=routed, confidence=0.7, source="teacher")
    embedding = np.zeros(8)
    embedding[item_id % 8] = 1.0
    return QueuedForReview(
        item_id=item_id,
        text=f"message {item_id}",
        prediction=prediction,
        embedding=embedding,
        vetoed=False,
        density=density,
    )


def test_an_item_whose_routed_label_the_labeler_now_doubts_ranks_first() -> None:
    task = Task(name="t", labels=[{"name": "ham"}, {"name": "spam"}])
    queued = [_queued(1, "spam", 0.5), _queued(2, "ham", 0.5), _queued(3, "ham", None), _queued(4, "spam", None)]
    ranked = rank_queue(task, reviews=[], pool=LabeledPool(), queued=queued)
    assert set(ranked) == {1, 2, 3, 4}
    # The same scores (spam 0.7): routed ham is wrong with chance 0.7, routed spam with 0.3.
    assert ranked[2][0] > ranked[1][0] and ranked[3][0] > ranked[4][0]
    assert "70% chance of being wrong" in ranked[2][1] and "30% chance of being wrong" in ranked[1][1]
    assert all(0.0 < priority <= 1.0 for priority, _ in ranked.values())

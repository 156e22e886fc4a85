"""A labeled task seeded in bulk (rows inserted many at a time, not through the labeling loop), for the dashboard
benchmark: items accepted with a teacher label, items reviewed by humans (some drawn uniformly, some audited, some
answered twice or gold), spread over a day of routing."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from service.store import keys
from service.store.review_seed import item_row, seeded_task
from service.tables import DecisionRecord, Item, Label, Prediction, ReviewVote, utcnow

LABELS = ("ham", "spam")
REVIEWERS = ("ana", "ben", "cho")
REVIEWER_ACCURACY = (0.97, 0.9, 0.8)


DIMENSIONS = 384
DUPLICATE_SHARE = 0.01
"""Share of the items seeded as a near copy (cosine above 0.99) of another item, with its own label."""


def seed_labeled_task(session: Session, *, items: int, reviews: int, seed: int = 0) -> tuple[str, str]:
    """A new task with ``items`` routed items of which ``reviews`` were reviewed, each with a random embedding
    (``DUPLICATE_SHARE`` of them near copies of another); returns its name and a lead key."""
    rng = np.random.default_rng(seed)
    task, batch = seeded_task(session, prefix="dash", labels=LABELS, items=items)
    start = utcnow() - timedelta(days=1)
    step = timedelta(days=1) / items
    truth = rng.integers(2, size=items)
    reviewed = np.zeros(items, dtype=bool)
    reviewed[rng.choice(items, size=reviews, replace=False)] = True
    vectors = rng.standard_normal((items, DIMENSIONS)).astype(np.float32)
    copies = rng.choice(items, size=int(items * DUPLICATE_SHARE), replace=False)
    vectors[copies] = vectors[rng.integers(items, size=copies.size)] + 0.05 * rng.standard_normal(
        (copies.size, DIMENSIONS)
    ).astype(np.float32)
    session.execute(
        insert(Item),
        [
            item_row(
                task,
                batch,
                i,
                state="resolved" if reviewed[i] else "accepted",
                meta={"gold_label": LABELS[truth[i]]} if reviewed[i] and i % 50 == 0 else {},
                embedding=vectors[i].tobytes(),
                created_at=start + i * step,
            )
            for i in range(items)
        ],
    )
    ids = list(session.scalars(select(Item.id).where(Item.task_id == task.id).order_by(Item.id)))
    confidence = np.where(reviewed, rng.uniform(0.5, 0.9, size=items), rng.uniform(0.9, 1.0, size=items))
    machine = np.where(rng.random(items) < np.where(reviewed, 0.8, 0.98), truth, 1 - truth)
    session.execute(
        insert(Prediction),
        [
            {
                "item_id": item_id,
                "source": "teacher",
                "model": "bench",
                "raw_probs": [float(1 - c), float(c)] if machine[i] else [float(c), float(1 - c)],
                "probs": [float(1 - c), float(c)] if machine[i] else [float(c), float(1 - c)],
                "label": LABELS[machine[i]],
                "confidence": float(c),
                "created_at": start + i * step,
            }
            for i, (item_id, c) in enumerate(zip(ids, confidence, strict=True))
        ],
    )
    predictions = dict(
        session.execute(select(Prediction.item_id, Prediction.id).where(Prediction.item_id.in_(ids))).all()
    )
    uniform = rng.random(items) < 0.2

    def reasons(i: int) -> list[str]:
        if not reviewed[i]:
            return []
        if uniform[i]:
            return ["cold_start"] if i < items // 10 else ["audit_sample"]
        return ["below_threshold"]

    session.execute(
        insert(DecisionRecord),
        [
            {
                "item_id": item_id,
                "prediction_id": predictions[item_id],
                "accept": not reviewed[i],
                "reasons": reasons(i),
                "signals": {"confidence": float(confidence[i]), "labeler": 0} if i >= items // 10 else {},
                "created_at": start + i * step,
            }
            for i, item_id in enumerate(ids)
        ],
    )
    _seed_labels(session, task_id=task.id, ids=ids, truth=truth, machine=machine, reviewed=reviewed, rng=rng)
    _, lead = keys.create_key(session, name=f"{task.name}-lead", role="lead")
    return task.name, lead


def _seed_labels(
    session: Session,
    *,
    task_id: int,
    ids: list[int],
    truth: np.ndarray,
    machine: np.ndarray,
    reviewed: np.ndarray,
    rng: np.random.Generator,
) -> None:
    """Teacher labels on accepted items; on reviewed ones a vote each (two on a tenth of them) and the human
    label, answered right with each reviewer's accuracy."""
    day_start = utcnow() - timedelta(days=1)
    rows = []
    votes = []
    for i, item_id in enumerate(ids):
        if not reviewed[i]:
            rows.append({"item_id": item_id, "task_id": task_id, "label": LABELS[machine[i]], "source": "teacher"})
            continue
        who = [int(rng.integers(3))]
        if i % 10 == 0:
            who.append((who[0] + 1) % 3)
        answers = [truth[i] if rng.random() < REVIEWER_ACCURACY[r] else 1 - truth[i] for r in who]
        at = day_start + timedelta(days=1) * float(rng.random())
        for r, answer in zip(who, answers, strict=True):
            votes.append(
                {
                    "item_id": item_id,
                    "task_id": task_id,
                    "reviewer": REVIEWERS[r],
                    "label": LABELS[answer],
                    "kind": "gold" if i % 50 == 0 else "review",
                    "required": len(who),
                    "priority": 0.5,
                    "created_at": at,
                }
            )
        rows.append(
            {
                "item_id": item_id,
                "task_id": task_id,
                "label": LABELS[answers[0]],
                "source": "human",
                "reviewer": ",".join(REVIEWERS[r] for r in who),
                "created_at": at,
            }
        )
    session.execute(insert(Label), rows)
    session.execute(insert(ReviewVote), votes)

"""Consistency checks: items labeled since the last check are compared with every labeled item of the task
(pipeline.consistency.near_pairs); near-identical pairs whose final labels differ are kept, listed while their
labels still differ, and sent to adjudication on a lead's request."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.errors import NotFound
from service.pipeline.consistency import near_pairs
from service.store.items import latest_rows
from service.tables import AdjudicationEntry, ConsistencyCheck, InconsistentPair, Item, Label, Task, utcnow

INCONSISTENT = "inconsistent"
"""The start of the explanation of an adjudication entry made from a pair (see review_quality.Disputed.reason)."""


def final_labels(session: Session, *, task_id: int) -> tuple[dict[int, str], dict[int, int]]:
    """item id -> its final label, and -> the id of that label."""
    labels: dict[int, str] = {}
    ids: dict[int, int] = {}
    for label_id, item_id, label in session.execute(
        select(Label.id, Label.item_id, Label.label).where(Label.task_id == task_id).order_by(Label.id)
    ):
        labels[item_id] = label
        ids[item_id] = label_id
    return labels, ids


def labels_of(session: Session, item_ids: list[int]) -> dict[int, str]:
    """The final label of each of these items (only theirs: a task may hold 100k others)."""
    return {item_id: row.label for item_id, row in latest_rows(session, Label, sorted(set(item_ids))).items()}


@dataclass(frozen=True)
class CheckResult:
    checked: int
    """Items labeled since the last check, compared with every labeled item."""
    compared_with: int
    found: int
    """New pairs whose labels differ."""
    min_cosine: float


def check(session: Session, *, task: Task, min_cosine: float) -> CheckResult:
    """Compare the items labeled since the last check (all of them at the first, or when ``min_cosine`` changed)
    with every labeled item that has an embedding; keep the pairs whose final labels differ."""
    state = session.get(ConsistencyCheck, task.id, with_for_update=True)
    since = state.checked_through if state is not None and state.min_cosine == min_cosine else 0
    labels, label_ids = final_labels(session, task_id=task.id)
    vectors: dict[int, np.ndarray] = {}
    for item_id, embedding in session.execute(
        select(Item.id, Item.embedding).where(Item.task_id == task.id, Item.embedding.is_not(None))
    ):
        if item_id in labels and embedding is not None:
            vectors[item_id] = np.frombuffer(embedding, dtype=np.float32)
    ids = sorted(vectors)
    new = [item_id for item_id in ids if label_ids[item_id] > since]
    # Only pairs with different labels count, so each label's new items are compared with the items of the
    # other labels alone: on two labels split 90/10 that is a fifth of the work of all against all.
    pairs: list[tuple[int, int, float]] = []
    for label in sorted({labels[item_id] for item_id in new}):
        mine = [item_id for item_id in new if labels[item_id] == label]
        others = [item_id for item_id in ids if labels[item_id] != label]
        pairs += near_pairs(
            new_ids=mine,
            new_vectors=np.stack([vectors[i] for i in mine]),
            ids=others,
            vectors=np.stack([vectors[i] for i in others]) if others else np.zeros((0, 1)),
            min_cosine=min_cosine,
        )
    known: set[tuple[int, int]] = {
        (first, second)
        for first, second in session.execute(
            select(InconsistentPair.first_item_id, InconsistentPair.second_item_id).where(
                InconsistentPair.task_id == task.id
            )
        )
    }
    found = 0
    for first, second, cosine in sorted(pairs):
        if (first, second) not in known:
            known.add((first, second))
            session.add(InconsistentPair(task_id=task.id, first_item_id=first, second_item_id=second, cosine=cosine))
            found += 1
    through = max(label_ids.values(), default=0)
    if state is None:
        session.add(ConsistencyCheck(task_id=task.id, checked_through=through, min_cosine=min_cosine))
    else:
        state.checked_through, state.min_cosine, state.checked_at = through, min_cosine, utcnow()
    session.flush()
    return CheckResult(checked=len(new), compared_with=len(ids), found=found, min_cosine=min_cosine)


@dataclass(frozen=True)
class OpenPair:
    pair: InconsistentPair
    first: Item
    second: Item
    first_label: str
    second_label: str


def open_pairs(session: Session, *, task: Task, limit: int = 50) -> list[OpenPair]:
    """Pairs not yet sent to adjudication whose final labels still differ, the most alike first."""
    pairs = list(
        session.scalars(
            select(InconsistentPair)
            .where(InconsistentPair.task_id == task.id, InconsistentPair.sent_at.is_(None))
            .order_by(InconsistentPair.cosine.desc(), InconsistentPair.id)
        )
    )
    labels = labels_of(session, [item for pair in pairs for item in (pair.first_item_id, pair.second_item_id)])
    result = []
    for pair in pairs:
        first, second = labels.get(pair.first_item_id), labels.get(pair.second_item_id)
        if first is None or second is None or first == second:
            continue
        result.append(_view(session, pair, first, second))
        if len(result) >= limit:
            break
    return result


def _view(session: Session, pair: InconsistentPair, first: str, second: str) -> OpenPair:
    return OpenPair(
        pair, session.get_one(Item, pair.first_item_id), session.get_one(Item, pair.second_item_id), first, second
    )


def send_to_adjudication(session: Session, *, task: Task, pair_id: int) -> OpenPair:
    """Both items of the pair wait for a lead's final label (an item already waiting stays as it is)."""
    pair = session.get(InconsistentPair, pair_id, with_for_update=True)
    if pair is None or pair.task_id != task.id:
        raise NotFound(f"no inconsistent pair {pair_id} in task {task.name!r}", field="pair_id")
    for item_id, other in ((pair.first_item_id, pair.second_item_id), (pair.second_item_id, pair.first_item_id)):
        if session.get(AdjudicationEntry, item_id) is None:
            session.add(
                AdjudicationEntry(
                    item_id=item_id,
                    task_id=task.id,
                    priority=pair.cosine,
                    explanation=f"{INCONSISTENT} with item {other} (cosine {pair.cosine:.3f})",
                )
            )
    pair.sent_at = pair.sent_at or utcnow()
    session.flush()
    labels = labels_of(session, [pair.first_item_id, pair.second_item_id])
    return _view(session, pair, labels[pair.first_item_id], labels[pair.second_item_id])

"""Consistency checks: items labeled since the last check are compared with every labeled item of the task
(pipeline.consistency.near_pairs); near-identical pairs whose final labels differ are kept, listed while their
labels still differ, and sent to adjudication on a lead's request."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.errors import NotFound
from service.pipeline.consistency import near_pairs
from service.store.items import latest_rows
from service.tables import AdjudicationEntry, ConsistencyCheck, InconsistentPair, Item, Job, Label, Task, utcnow

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


INLINE_COMPARISONS = 50_000_000
"""Checks up to this many item comparisons (new items x labeled items, about 0.2 s of arithmetic) run inside the
request; larger ones (the first check of a large task: 100k x 100k took 42 s) run as a job."""

CHECK_JOB = "consistency_check"


def pending(session: Session, *, task: Task, min_cosine: float) -> tuple[int, int]:
    """(labels written since the last check at this threshold, labeled items with an embedding): what the next
    check would compare, from two indexed counts, to decide where it runs."""
    since = _checked_through(session, task=task, min_cosine=min_cosine)
    new = session.scalar(select(func.count()).where(Label.task_id == task.id, Label.id > since)) or 0
    labeled = select(Label.item_id).where(Label.task_id == task.id)
    total = session.scalar(
        select(func.count()).where(Item.task_id == task.id, Item.embedding.is_not(None), Item.id.in_(labeled))
    )
    return int(new), int(total or 0)


def _checked_through(session: Session, *, task: Task, min_cosine: float) -> int:
    """The newest label id the task's last check at this threshold covered (0: none, or another threshold)."""
    state = session.get(ConsistencyCheck, task.id)
    return state.checked_through if state is not None and state.min_cosine == min_cosine else 0


def queued_check(session: Session, *, task: Task) -> Job | None:
    """The task's check that waits for a worker or runs, if any."""
    return session.scalar(
        select(Job).where(Job.kind == CHECK_JOB, Job.task_id == task.id, Job.state.in_(("queued", "running"))).limit(1)
    )


@dataclass(frozen=True)
class Queued:
    job: Job
    new: int
    """Labels written since the last check: the size of the check to come."""
    labeled: int


def run_or_queue(session: Session, *, task: Task, min_cosine: float) -> CheckResult | Queued:
    """Run a small check now; queue a large one as a job (or answer the task's check already queued)."""
    queued = queued_check(session, task=task)
    new, labeled = pending(session, task=task, min_cosine=min_cosine)
    if queued is None and new == 0:  # nothing labeled since: no embedding needs reading
        return record(session, snap=Snapshot(task.id, min_cosine, {}, {}, [], 0), pairs=[], compared_with=labeled)
    if queued is None and new * labeled <= INLINE_COMPARISONS:
        return check(session, task=task, min_cosine=min_cosine)
    if queued is None:
        queued = Job(kind=CHECK_JOB, task_id=task.id, payload={"min_cosine": min_cosine})
        session.add(queued)
        session.flush()
    return Queued(queued, new, labeled)


@dataclass(frozen=True)
class Snapshot:
    """What a check compares, read in one short transaction: the computation runs outside it."""

    task_id: int
    min_cosine: float
    labels: dict[int, str]
    vectors: dict[int, np.ndarray]
    new: list[int]
    through: int
    """The newest label id read: the next check starts after it."""


def snapshot(session: Session, *, task: Task, min_cosine: float) -> Snapshot:
    since = _checked_through(session, task=task, min_cosine=min_cosine)
    labels, label_ids = final_labels(session, task_id=task.id)
    vectors: dict[int, np.ndarray] = {}
    for item_id, embedding in session.execute(
        select(Item.id, Item.embedding).where(Item.task_id == task.id, Item.embedding.is_not(None))
    ):
        if item_id in labels and embedding is not None:
            vectors[item_id] = np.frombuffer(embedding, dtype=np.float32)
    new = [item_id for item_id in sorted(vectors) if label_ids[item_id] > since]
    return Snapshot(task.id, min_cosine, labels, vectors, new, max(label_ids.values(), default=0))


def find(snap: Snapshot, progress: Callable[[int, int], None] | None = None) -> list[tuple[int, int, float]]:
    """Near-identical pairs with different labels among the snapshot's items, each with a new item in it;
    ``progress(new items compared, new items)`` is called after each label's."""
    labels, vectors, ids = snap.labels, snap.vectors, sorted(snap.vectors)
    # Only pairs with different labels count, so each label's new items are compared with the items of the
    # other labels alone: on two labels split 90/10 that is a fifth of the work of all against all.
    pairs: list[tuple[int, int, float]] = []
    done = 0
    for label in sorted({labels[item_id] for item_id in snap.new}):
        mine = [item_id for item_id in snap.new if labels[item_id] == label]
        others = [item_id for item_id in ids if labels[item_id] != label]
        pairs += near_pairs(
            new_ids=mine,
            new_vectors=np.stack([vectors[i] for i in mine]),
            ids=others,
            vectors=np.stack([vectors[i] for i in others]) if others else np.zeros((0, 1)),
            min_cosine=snap.min_cosine,
        )
        done += len(mine)
        if progress is not None:
            progress(done, len(snap.new))
    return pairs


def record(
    session: Session, *, snap: Snapshot, pairs: list[tuple[int, int, float]], compared_with: int | None = None
) -> CheckResult:
    """Keep the pairs not known yet and move the task's check past the snapshot (a check that ran beside this one
    and got further keeps its place)."""
    state = session.get(ConsistencyCheck, snap.task_id, with_for_update=True)
    known: set[tuple[int, int]] = {
        (first, second)
        for first, second in session.execute(
            select(InconsistentPair.first_item_id, InconsistentPair.second_item_id).where(
                InconsistentPair.task_id == snap.task_id
            )
        )
    }
    found = 0
    for first, second, cosine in sorted(pairs):
        if (first, second) not in known:
            known.add((first, second))
            session.add(
                InconsistentPair(task_id=snap.task_id, first_item_id=first, second_item_id=second, cosine=cosine)
            )
            found += 1
    if state is None:
        session.add(ConsistencyCheck(task_id=snap.task_id, checked_through=snap.through, min_cosine=snap.min_cosine))
    elif state.min_cosine != snap.min_cosine or state.checked_through < snap.through:
        state.checked_through, state.min_cosine, state.checked_at = snap.through, snap.min_cosine, utcnow()
    else:
        state.checked_at = utcnow()
    session.flush()
    compared = len(snap.vectors) if compared_with is None else compared_with
    return CheckResult(checked=len(snap.new), compared_with=compared, found=found, min_cosine=snap.min_cosine)


def check(session: Session, *, task: Task, min_cosine: float) -> CheckResult:
    """Compare the items labeled since the last check (all of them at the first, or when ``min_cosine`` changed)
    with every labeled item that has an embedding; keep the pairs whose final labels differ. In one transaction:
    for checks small enough to run in a request (see INLINE_COMPARISONS; a job splits the three steps)."""
    snap = snapshot(session, task=task, min_cosine=min_cosine)
    return record(session, snap=snap, pairs=find(snap))


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

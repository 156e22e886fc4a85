"""The review queue: items leased to one reviewer at a time; each answer is a vote, and when an item has the votes it
needs (k for audit and gold items, else one) and they agree, a human label supersedes the machine's. Votes that
disagree send the item to adjudication. A reviewer can undo their last answer: the vote is marked undone and the
item goes back to them; label rows are never deleted."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, cast

from sqlalchemy import ColumnElement, Table, and_, bindparam, exists, func, or_, select, update
from sqlalchemy.orm import Session

from service.errors import Conflict, NotFound
from service.pipeline.kinds import Shown
from service.pipeline.review_order import COLD_START_PRIORITY, RERANK_EVERY
from service.pipeline.sources import HUMAN_SOURCES
from service.store import answers, guidelines, jobs
from service.store.review_team import required_votes, review_settings
from service.store.tasks import answer_values, label_value
from service.tables import (
    AdjudicationEntry,
    DecisionRecord,
    Item,
    Job,
    Label,
    Prediction,
    ReviewEntry,
    ReviewSettings,
    ReviewSkip,
    ReviewVote,
    Task,
    utcnow,
)

RERANK_JOB = "rerank_queue"
RERANK_PACE = 4.0
"""A rerank waits this many times as long as the last one took: on a long queue, ranking it again takes at most a
fifth of a worker's time however fast reviews come in."""
ItemKind = Literal["review", "audit", "gold"]
Status = Literal["final", "waiting", "adjudication"]


def enqueue(session: Session, *, item: Item, priority: float, explanation: str) -> None:
    if session.get(ReviewEntry, item.id) is None:
        session.add(ReviewEntry(item_id=item.id, task_id=item.task_id, priority=priority, explanation=explanation))


def item_kind(item: Item, reasons: Sequence[str]) -> ItemKind:
    """Gold items carry a known answer in meta["gold_label"]; audit samples were accepted and drawn at random."""
    if item.meta.get("gold_label") is not None:
        return "gold"
    return "audit" if "audit_sample" in reasons else "review"


@dataclass(frozen=True)
class Leased:
    entry: ReviewEntry
    item: Item
    prediction: Prediction | None
    reasons: list[str]
    kind: ItemKind
    votes: int
    required: int


def next_item(session: Session, *, task: Task, reviewer: str, lease_s: float) -> Leased | None:
    """Lease the most urgent waiting item of the task to `reviewer` (or renew the one they already hold), leaving
    out items they skipped or already answered."""
    skipped = exists().where(ReviewSkip.item_id == ReviewEntry.item_id, ReviewSkip.reviewer == reviewer)
    answered = exists().where(
        ReviewVote.item_id == ReviewEntry.item_id, ReviewVote.reviewer == reviewer, ReviewVote.undone_at.is_(None)
    )
    waiting = (
        select(ReviewEntry)
        .where(ReviewEntry.task_id == task.id, ~skipped, ~answered)
        .order_by(ReviewEntry.priority.desc(), ReviewEntry.item_id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    # An item the reviewer already holds comes back first, so a reload does not leak leases. Two small queries,
    # each walking an index in priority order, stay fast as the queue and the votes grow.
    entry = session.scalar(waiting.where(ReviewEntry.leased_to == reviewer)) or session.scalar(
        waiting.where(or_(ReviewEntry.leased_to.is_(None), ReviewEntry.lease_expires < utcnow()))
    )
    if entry is None:
        return None
    return _lease(session, task=task, entry=entry, reviewer=reviewer, lease_s=lease_s)


def _lease(session: Session, *, task: Task, entry: ReviewEntry, reviewer: str, lease_s: float) -> Leased:
    entry.leased_to = reviewer
    entry.lease_expires = utcnow() + timedelta(seconds=lease_s)
    found = _item_with_latest(session, entry.item_id)
    assert found is not None, "a queue entry's item exists (foreign key)"
    item, prediction, decision = found
    reasons = decision.reason_names if decision is not None else []
    kind = item_kind(item, reasons)
    if kind == "review":  # one answer makes it final, so none is pending: spare the queries
        return Leased(entry, item, prediction, reasons, kind, 0, 1)
    votes = len(active_votes(session, item.id))
    settings = review_settings(session, task_id=task.id)
    return Leased(entry, item, prediction, reasons, kind, votes, required_votes(settings, kind=kind))


def _item_with_latest(session: Session, item_id: int) -> tuple[Item, Prediction | None, DecisionRecord | None] | None:
    """The item with its latest prediction and routing decision, in one query; None if there is no such item."""
    latest_prediction = select(func.max(Prediction.id)).where(Prediction.item_id == item_id).scalar_subquery()
    latest_decision = select(func.max(DecisionRecord.id)).where(DecisionRecord.item_id == item_id).scalar_subquery()
    row = session.execute(
        select(Item, Prediction, DecisionRecord)
        .select_from(Item)
        .outerjoin(Prediction, Prediction.id == latest_prediction)
        .outerjoin(DecisionRecord, DecisionRecord.id == latest_decision)
        .where(Item.id == item_id)
    ).first()
    return (row[0], row[1], row[2]) if row is not None else None


@dataclass(frozen=True)
class Resolution:
    item_id: int
    label: str
    status: Status
    votes: int
    required: int


def resolve(session: Session, *, task: Task, item_id: int, reviewer: str, label: Shown) -> Resolution:
    """Record the reviewer's answer (see tasks.label_value). Repeating the same answer is a no-op that returns the
    item's status."""
    found = _item_with_latest(session, item_id)
    if found is None or found[0].task_id != task.id:
        raise NotFound(f"no item {item_id} in task {task.name!r}", field="item_id")
    item, prediction, decision = found
    label = label_value(task, label, text=item.text)
    entry = session.get(ReviewEntry, item_id, with_for_update=True)
    votes = active_votes(session, item_id)
    kind = item_kind(item, decision.reason_names if decision is not None else [])
    settings = review_settings(session, task_id=task.id)
    own = [vote for vote in votes if vote.reviewer == reviewer]
    if own:
        if own[-1].label != label:
            raise Conflict(f"you answered item {item_id} with {own[-1].label!r} already; undo it first", field="label")
        return Resolution(item_id, label, _status(session, item, entry), len(votes), own[-1].required)
    if entry is None:
        raise Conflict(f"item {item_id} is not waiting for review", field="item_id")
    if entry.leased_to not in (None, reviewer) and not _expired(entry.lease_expires):
        raise Conflict(f"item {item_id} is leased to another reviewer", field="item_id")
    required = _required(session, task=task, kind=kind, settings=settings, votes=votes, reviewer=reviewer)
    complete = len(votes) + 1 >= required
    agreed = all(vote.label == label for vote in votes)
    final = label if agreed else None
    names = [*(v.reviewer for v in votes), reviewer]
    if complete and not agreed and settings.aggregate_at is not None:
        weighted, probability = (
            answers.of_task(session, task=task)
            .reviewer_model(answer_values(task), also=[label])
            .aggregate({**{v.reviewer: v.label for v in votes}, reviewer: label})
        )
        if probability >= settings.aggregate_at:
            final = weighted
            names.append("(weighted)")
    to_lead = complete and final is None
    human = None
    if complete:
        session.delete(entry)
        if final is not None:
            human = Label(
                item_id=item_id,
                task_id=task.id,
                label=final,
                source="human",
                reviewer=",".join(names)[:200],
                confidence=None,
            )
            session.add(human)
            item.state = "resolved"
            session.flush()
            if task.kind != "spans":  # a spans task's queue is ordered by its teacher's answers, not by a probe
                _rank_again_when_due(session, task_id=task.id, label_id=human.id)
            if contradicts_accepted(decision, prediction, final):
                # The label stands (the audit counts as it is); a lead decides which answer is final.
                session.add(AdjudicationEntry(item_id=item_id, task_id=task.id, priority=entry.priority))
                to_lead = True
        else:
            session.add(
                AdjudicationEntry(
                    item_id=item_id, task_id=task.id, priority=entry.priority, explanation=entry.explanation
                )
            )
    else:
        entry.leased_to = None
        entry.lease_expires = None
    session.add(
        ReviewVote(
            item_id=item_id,
            task_id=task.id,
            reviewer=reviewer,
            label=label,
            kind=kind,
            required=required,
            priority=entry.priority,
            explanation=entry.explanation,
            label_id=human.id if human is not None else None,
            guideline_version=guidelines.current_version(session, task_id=task.id),
        )
    )
    status: Status = "adjudication" if to_lead else "final" if complete else "waiting"
    return Resolution(item_id, label, status, len(votes) + 1, required)


def _required(
    session: Session, *, task: Task, kind: ItemKind, settings: ReviewSettings, votes: list[ReviewVote], reviewer: str
) -> int:
    """Answers the item needs: the task's setting for audit and gold items; for a review item one, or two when
    its first answer comes from a reviewer the reviewer model estimates below ``second_review_below``."""
    if kind != "review":
        return required_votes(settings, kind=kind)
    if votes:
        return len(votes) + 1  # a second answer was asked for: this one settles it
    if settings.second_review_below is None:
        return 1
    model = answers.of_task(session, task=task).reviewer_model(answer_values(task))
    known = reviewer in model.evidence
    return 2 if known and model.accuracy(reviewer) < settings.second_review_below else 1


def contradicts_accepted(decision: DecisionRecord | None, prediction: Prediction | None, label: str) -> bool:
    """Whether a human label contradicts a machine label the policy would have accepted: an audit sample drawn
    from above the threshold, answered otherwise."""
    return (
        decision is not None
        and prediction is not None
        and bool(decision.signals.get("would_accept"))
        and prediction.label != label
    )


def _status(session: Session, item: Item, entry: ReviewEntry | None) -> Status:
    if entry is None and session.get(AdjudicationEntry, item.id) is not None:
        return "adjudication"
    return "final" if item.state == "resolved" else "waiting"


def undo_last(session: Session, *, task: Task, reviewer: str, lease_s: float) -> Leased:
    """Undo the reviewer's latest answer in the task and lease that item back to them. The final label it wrote, if
    any, stays in the history; the item is in review again and its next resolution supersedes it."""
    vote = session.scalar(
        select(ReviewVote)
        .where(ReviewVote.task_id == task.id, ReviewVote.reviewer == reviewer, ReviewVote.undone_at.is_(None))
        .order_by(ReviewVote.id.desc())
        .limit(1)
        .with_for_update()
    )
    if vote is None:
        raise NotFound(f"you have no answer to undo in task {task.name!r}")
    item = session.get_one(Item, vote.item_id)
    if any(other.id > vote.id for other in active_votes(session, item.id)):
        raise Conflict(f"another reviewer answered item {item.id} after you; it can no longer be undone")
    adjudication = session.get(AdjudicationEntry, item.id)
    if adjudication is not None:
        session.delete(adjudication)
    if vote.label_id is not None:
        latest = session.scalar(select(Label).where(Label.item_id == item.id).order_by(Label.id.desc()).limit(1))
        if latest is None or latest.id != vote.label_id:
            raise Conflict(f"item {item.id} has been labeled again since; it can no longer be undone")
        item.state = "review"
    elif adjudication is None and item.state == "resolved":
        raise Conflict(f"item {item.id} has been adjudicated; it can no longer be undone")
    entry = session.get(ReviewEntry, item.id)
    if entry is None:
        entry = ReviewEntry(item_id=item.id, task_id=task.id, priority=vote.priority, explanation=vote.explanation)
        session.add(entry)
    vote.undone_at = utcnow()
    session.flush()
    return _lease(session, task=task, entry=entry, reviewer=reviewer, lease_s=lease_s)


def skip(session: Session, *, task: Task, item_id: int, reviewer: str) -> None:
    entry = session.get(ReviewEntry, item_id, with_for_update=True)
    if entry is None or entry.task_id != task.id:
        raise NotFound(f"item {item_id} is not waiting for review in task {task.name!r}", field="item_id")
    if session.get(ReviewSkip, (item_id, reviewer)) is None:
        session.add(ReviewSkip(item_id=item_id, reviewer=reviewer))
    if entry.leased_to == reviewer:
        entry.leased_to = None
        entry.lease_expires = None


def active_votes(session: Session, item_id: int) -> list[ReviewVote]:
    return list(
        session.scalars(
            select(ReviewVote)
            .where(ReviewVote.item_id == item_id, ReviewVote.undone_at.is_(None))
            .order_by(ReviewVote.id)
        )
    )


def _rank_again_when_due(session: Session, *, task_id: int, label_id: int) -> None:
    """Queue a rerank_queue job once RERANK_EVERY human labels have come in since the last one was queued, to run
    no sooner than RERANK_PACE times the last one's duration; one waiting job serves every label that comes in
    before it runs."""
    last = session.scalar(
        select(Job).where(Job.kind == RERANK_JOB, Job.task_id == task_id).order_by(Job.id.desc()).limit(1)
    )
    if last is not None and last.state == "queued":
        return
    since = 0 if last is None else int(last.payload["through"])
    # By ascending id from the last one: a short range scan however many labels the task has.
    fresh = session.scalars(
        select(Label.id)
        .where(Label.id > since, Label.task_id == task_id, Label.source.in_(HUMAN_SOURCES))
        .order_by(Label.id)
        .limit(RERANK_EVERY)
    ).all()
    if len(fresh) >= RERANK_EVERY:
        took = float(last.result.get("seconds", 0.0)) if last is not None and last.state == "done" else 0.0
        jobs.enqueue(
            session,
            kind=RERANK_JOB,
            task_id=task_id,
            payload={"through": label_id},
            not_before=utcnow() + timedelta(seconds=RERANK_PACE * took) if took else None,
        )


def unclaimed_entries() -> tuple[ColumnElement[bool], ...]:
    """Queue entries no reviewer holds (or whose lease ran out) and nobody has answered: the ones a newer labeler
    may rescore or rank again."""
    return (
        or_(ReviewEntry.leased_to.is_(None), ReviewEntry.lease_expires < utcnow()),
        ~exists().where(ReviewVote.item_id == ReviewEntry.item_id, ReviewVote.undone_at.is_(None)),
    )


def reprioritize(session: Session, *, task_id: int, ranked: dict[int, tuple[float, str]]) -> int:
    """Give the queued items in ``ranked`` their new (priority, explanation); items answered, leased or gone since
    it was computed keep what they have. Returns how many changed."""
    if not ranked:
        return 0
    free = session.scalars(
        select(ReviewEntry.item_id).where(
            ReviewEntry.task_id == task_id, ReviewEntry.item_id.in_(list(ranked)), *unclaimed_entries()
        )
    ).all()
    if not free:
        return 0
    table = cast(Table, ReviewEntry.__table__)
    session.execute(
        update(table)
        .where(table.c.item_id == bindparam("entry"))
        .values(priority=bindparam("new_priority"), explanation=bindparam("new_explanation")),
        [{"entry": i, "new_priority": ranked[i][0], "new_explanation": ranked[i][1]} for i in free],
    )
    return len(free)


def waiting_count(session: Session, *, task: Task) -> int:
    return int(session.scalar(select(func.count()).select_from(ReviewEntry).where(ReviewEntry.task_id == task.id)) or 0)


def waiting_draws(session: Session, *, task: Task) -> int:
    """Cold-start draws waiting for a reviewer (they rank from COLD_START_PRIORITY up)."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(ReviewEntry)
            .where(ReviewEntry.task_id == task.id, ReviewEntry.priority >= COLD_START_PRIORITY)
        )
        or 0
    )


def human_count(session: Session, *, task_id: int) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(Label)
            .where(and_(Label.task_id == task_id, Label.source.in_(HUMAN_SOURCES)))
        )
        or 0
    )


def latest_reasons(session: Session, item_id: int) -> list[str]:
    decision = session.scalar(
        select(DecisionRecord).where(DecisionRecord.item_id == item_id).order_by(DecisionRecord.id.desc()).limit(1)
    )
    return decision.reason_names if decision is not None else []


def _expired(expires: datetime | None) -> bool:
    return expires is None or expires < utcnow()

"""Review: next item (leased to one reviewer), resolve, skip, undo and progress, on tasks assigned to the reviewer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status
from sqlalchemy.orm import Session, sessionmaker

from service.api.deps import ReviewerDep, RowId, SessionDep, SettingsDep
from service.api.schemas.review import ProgressPublic, ReviewLeasePublic, TaskCounts, VoteCreate, VotePublic
from service.db import transaction
from service.store import review, review_team, tasks
from service.store.history import shown_blind
from service.tables import Prediction, Task

router = APIRouter(prefix="/v1/tasks/{task}/review", tags=["review"])


async def _sessions(request: Request) -> sessionmaker[Session]:
    factory: sessionmaker[Session] = request.app.state.sessions
    return factory


# The hot endpoints open their transaction inside the endpoint rather than through SessionDep, so it commits
# before the response is serialised: on SQLite the write lock is then held for the queries alone, not across the
# threadpool hops of a yield dependency, which under 20 concurrent reviewers made others wait in busy sleeps.
SessionsDep = Annotated[sessionmaker[Session], Depends(_sessions)]


def lease_public(task: Task, leased: review.Leased) -> ReviewLeasePublic:
    # Uniform draws certify the error of machine labels: shown the machine's answer, a reviewer may anchor on it.
    blind = shown_blind(leased.reasons)
    prediction = None if blind else leased.prediction
    assert leased.entry.lease_expires is not None
    return ReviewLeasePublic(
        blind=blind,
        item_id=leased.item.id,
        external_id=leased.item.external_id,
        task=task.name,
        text=leased.item.text,
        truncated=leased.item.truncated,
        suggestion=tasks.public_label(task, prediction.label) if prediction else None,
        confidence=prediction.confidence if prediction else None,
        probs=tasks.label_probs(task, prediction.probs) if prediction else {},
        span_confidences=_span_confidences(task, prediction),
        reasons=leased.reasons,
        priority=leased.entry.priority,
        priority_explanation=leased.entry.explanation,
        lease_expires=leased.entry.lease_expires,
        kind=leased.kind,
        votes=leased.votes,
        required=leased.required,
    )


def _span_confidences(task: Task, prediction: Prediction | None) -> list[float] | None:
    """A spans suggestion's per-span probabilities, stored as the teacher's raw scores (jobs/span_scoring.py)."""
    if task.kind != "spans" or prediction is None or not prediction.raw_probs:
        return None
    return [float(p) for p in prediction.raw_probs]


@router.post(
    "/next",
    response_model=ReviewLeasePublic,
    responses={204: {"description": "Nothing is waiting for this reviewer."}},
)
def next_item(
    task: str, sessions: SessionsDep, settings: SettingsDep, key: ReviewerDep
) -> ReviewLeasePublic | Response:
    with transaction(sessions) as session:
        task_row = review_team.task_for(session, key, task)
        leased = review.next_item(session, task=task_row, reviewer=key.name, lease_s=settings.review_lease_s)
        if leased is None:
            return Response(status_code=status.HTTP_204_NO_CONTENT)
        return lease_public(task_row, leased)


@router.post("/undo", response_model=ReviewLeasePublic)
def undo(task: str, session: SessionDep, settings: SettingsDep, key: ReviewerDep) -> ReviewLeasePublic:
    """Take back your latest answer in this task; the item is leased back to you and returned."""
    task_row = review_team.task_for(session, key, task)
    leased = review.undo_last(session, task=task_row, reviewer=key.name, lease_s=settings.review_lease_s)
    return lease_public(task_row, leased)


@router.get("/progress", response_model=ProgressPublic)
def progress(task: str, session: SessionDep, key: ReviewerDep) -> ProgressPublic:
    done = review_team.progress(session, task=review_team.task_for(session, key, task), reviewer=key.name)
    counts = TaskCounts(items=done.items, waiting=done.waiting, adjudication=done.adjudication, counts=done.counts)
    return ProgressPublic(reviewer=done.reviewer, reviewed=done.reviewed, task=counts)


@router.post("/{item_id}/resolve", response_model=VotePublic)
def resolve(
    task: str,
    item_id: RowId,
    body: VoteCreate,
    sessions: SessionsDep,
    settings: SettingsDep,
    key: ReviewerDep,
    and_next: Annotated[
        bool, Query(alias="next", description="Also lease and return the next item, saving a request.")
    ] = False,
) -> VotePublic:
    with transaction(sessions) as session:
        task_row = review_team.task_for(session, key, task)
        result = review.resolve(session, task=task_row, item_id=item_id, reviewer=key.name, label=body.label)
        following = None
        if and_next:
            leased = review.next_item(session, task=task_row, reviewer=key.name, lease_s=settings.review_lease_s)
            following = lease_public(task_row, leased) if leased is not None else None
    return VotePublic(
        item_id=item_id,
        label=tasks.public_label(task_row, result.label),
        status=result.status,
        votes=result.votes,
        required=result.required,
        next_item=following,
    )


@router.post("/{item_id}/skip", status_code=status.HTTP_204_NO_CONTENT)
def skip(task: str, item_id: RowId, session: SessionDep, key: ReviewerDep) -> None:
    review.skip(session, task=review_team.task_for(session, key, task), item_id=item_id, reviewer=key.name)

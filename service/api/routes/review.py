"""Review: next item (leased to one reviewer), resolve, skip."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from service.api.deps import ReviewerDep, SessionDep, SettingsDep
from service.schemas import ResolvedPublic, ResolveIn, ReviewItemPublic
from service.store import review, tasks

router = APIRouter(prefix="/v1/tasks/{task}/review", tags=["review"])


@router.post(
    "/next",
    response_model=ReviewItemPublic,
    responses={204: {"description": "Nothing is waiting for this reviewer."}},
)
def next_item(task: str, session: SessionDep, settings: SettingsDep, key: ReviewerDep) -> ReviewItemPublic | Response:
    task_row = tasks.get_task(session, task)
    leased = review.next_item(session, task=task_row, reviewer=key.name, lease_s=settings.review_lease_s)
    if leased is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    prediction = leased.prediction
    names = tasks.label_names(task_row)
    return ReviewItemPublic(
        item_id=leased.item.id,
        external_id=leased.item.external_id,
        task=task_row.name,
        text=leased.item.text,
        truncated=leased.item.truncated,
        suggestion=prediction.label if prediction else None,
        confidence=prediction.confidence if prediction else None,
        probs=dict(zip(names, (float(p) for p in prediction.probs), strict=False)) if prediction else {},
        reasons=leased.reasons,
        priority=leased.entry.priority,
        priority_explanation=leased.entry.explanation,
        lease_expires=leased.lease_expires,
    )


@router.post("/{item_id}/resolve", response_model=ResolvedPublic)
def resolve(task: str, item_id: int, body: ResolveIn, session: SessionDep, key: ReviewerDep) -> ResolvedPublic:
    task_row = tasks.get_task(session, task)
    label = review.resolve(session, task=task_row, item_id=item_id, reviewer=key.name, label=body.label)
    return ResolvedPublic(item_id=item_id, label=label.label)


@router.post("/{item_id}/skip", status_code=status.HTTP_204_NO_CONTENT)
def skip(task: str, item_id: int, session: SessionDep, key: ReviewerDep) -> None:
    review.skip(session, task=tasks.get_task(session, task), item_id=item_id, reviewer=key.name)

"""A task's guidelines for reviewers: the current version (what the review page shows), every version, and a
revision by a lead. Each review answer records the version it was given under."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from service.api.deps import LeadDep, ReviewerDep, SessionDep
from service.api.schemas.guidelines import GuidelinesPublic, GuidelinesUpdate
from service.store import guidelines, review_team, tasks
from service.tables import Guideline

router = APIRouter(prefix="/v1/tasks/{task}/guidelines", tags=["review team"])


def _public(row: Guideline) -> GuidelinesPublic:
    return GuidelinesPublic(version=row.version, text=row.text, author=row.author, created_at=row.created_at)


@router.get("", response_model=GuidelinesPublic)
def read_current(task: str, session: SessionDep, key: ReviewerDep) -> GuidelinesPublic:
    return _public(guidelines.current(session, task=review_team.task_for(session, key, task)))


@router.get("/versions", response_model=list[GuidelinesPublic])
def read_versions(task: str, session: SessionDep, key: ReviewerDep) -> list[GuidelinesPublic]:
    return [_public(row) for row in guidelines.versions(session, task=review_team.task_for(session, key, task))]


@router.put("", response_model=GuidelinesPublic)
def revise(
    task: str, body: GuidelinesUpdate, session: SessionDep, key: LeadDep, response: Response
) -> GuidelinesPublic:
    """A new version when the text differs from the current one (201), else the current one (200). The teacher's
    prompt keeps the task's instructions."""
    row, added = guidelines.revise(session, task=tasks.get_task(session, task), text=body.text, author=key.name)
    response.status_code = status.HTTP_201_CREATED if added else status.HTTP_200_OK
    return _public(row)

"""Task quality: the certified error bound, realised audit error, coverage and reviews spent."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter
from sqlalchemy import func, select

from service.api.deps import ReaderDep, SessionDep, SettingsDep
from service.pipeline.policy import quality_summary
from service.store import history, review, tasks
from service.tables import Item

router = APIRouter(prefix="/v1/tasks/{task}/quality", tags=["quality"])


@router.get("")
def read_quality(task: str, session: SessionDep, settings: SettingsDep, _key: ReaderDep) -> dict[str, Any]:
    task_row = tasks.get_task(session, task)
    policy = history.fit_task_policy(session, task_row, min_reviews=settings.policy.min_reviews)
    outcomes = history.reviewed_outcomes(session, task_id=task_row.id)
    counts = dict(
        session.execute(select(Item.state, func.count()).where(Item.task_id == task_row.id).group_by(Item.state)).all()
    )
    routed = sum(count for state, count in counts.items() if state != "queued")
    summary = quality_summary(
        policy=policy,
        audit_correct=[o.correct for o in outcomes if o.audit],
        accepted=counts.get("accepted", 0),
        total=routed,
        human_reviews=review.human_count(session, task_id=task_row.id),
    )
    return {**asdict(summary), "certified_on": policy.fitted_on}

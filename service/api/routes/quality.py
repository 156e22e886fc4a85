"""Task quality: the certified error bound, realised audit error, coverage and reviews spent."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter

from service.api.deps import ReaderDep, SessionDep, SettingsDep
from service.api.schemas.quality import QualityPublic
from service.pipeline.policy import quality_summary
from service.store import history, items, review, tasks
from service.task_policy import fit_task_policy

router = APIRouter(prefix="/v1/tasks/{task}/quality", tags=["quality"])


@router.get("", response_model=QualityPublic)
def read_quality(task: str, session: SessionDep, settings: SettingsDep, _key: ReaderDep) -> QualityPublic:
    task_row = tasks.get_task(session, task)
    policy = fit_task_policy(session, task_row, min_reviews=settings.policy.min_reviews)
    outcomes = history.reviewed_outcomes(session, task_id=task_row.id)
    counts = items.counts_by_state(session, task_id=task_row.id)
    summary = quality_summary(
        policy=policy,
        audit_correct=[o.correct for o in outcomes if o.audit],
        accepted=counts.get("accepted", 0),
        total=sum(count for state, count in counts.items() if state != "queued"),
        human_reviews=review.human_count(session, task_id=task_row.id),
    )
    return QualityPublic(**asdict(summary), certified_on=policy.fitted_on)

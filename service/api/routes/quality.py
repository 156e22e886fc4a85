"""Task quality: the certified error bound, realised audit error, coverage, reviews spent and still needed."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter
from sqlalchemy.orm import Session

from service import task_policy
from service.api.deps import ReaderDep, SessionDep, SettingsDep
from service.api.schemas.quality import LabelerPublic, QualityPublic
from service.pipeline.policy import quality_summary
from service.store import history, items, labelers, review, tasks
from service.tables import Task

router = APIRouter(prefix="/v1/tasks/{task}/quality", tags=["quality"])


@router.get("", response_model=QualityPublic)
def read_quality(task: str, session: SessionDep, settings: SettingsDep, _key: ReaderDep) -> QualityPublic:
    return quality_of(session, tasks.get_task(session, task), min_reviews=settings.policy.min_reviews)


def quality_of(
    session: Session, task_row: Task, *, min_reviews: int, reviews: list[history.UniformReview] | None = None
) -> QualityPublic:
    """The task's quality report (also on the lead's dashboard, which passes the uniform reviews it has read)."""
    reviews = history.uniform_reviews(session, task_id=task_row.id) if reviews is None else reviews
    applied = task_policy.applied(session, task_row, reviews=reviews, min_reviews=min_reviews)
    audits = [r for r in reviews if r.audit]
    counts = items.counts_by_state(session, task_id=task_row.id)
    human = review.human_count(session, task_id=task_row.id)
    summary = quality_summary(
        policy=applied.policy,
        audit_correct=[r.machine == r.human for r in audits],
        accepted=counts.get("accepted", 0),
        total=sum(count for state, count in counts.items() if state != "queued"),
        human_reviews=human,
    )
    return QualityPublic(
        **asdict(summary),
        certified_on=applied.policy.fitted_on,
        labeler=None
        if applied.labeler.stack is None or applied.labeler.look is None
        else LabelerPublic(
            look=applied.labeler.look,
            sources=list(applied.labeler.stack.sources),
            weights=list(applied.labeler.stack.weights),
            description=applied.labeler.stack.describe(),
        ),
        looks=labelers.looks_done(session, task_id=task_row.id),
        review_budget=task_row.review_budget,
        reviews_left=None if task_row.review_budget is None else max(0, task_row.review_budget - human),
        target_coverage=task_row.target_coverage,
        expected_reviews_to_target=task_policy.expected_reviews_to_target(session, task_row, reviews=reviews),
    )

"""Task quality: the certified error bound, realised audit error, coverage, reviews spent and still needed."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter
from sqlalchemy.orm import Session

from service import task_policy
from service.api.deps import ReaderDep, SessionDep, SettingsDep
from service.api.schemas.quality import LabelerPublic, QualityPublic
from service.pipeline.policy import Policy, quality_summary
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
    if task_row.kind == "spans":
        # No labeler of the teacher's is certified for span sets: what accepts them is the promoted tagger, its
        # threshold certified on its gold at training, and its audits are what test it since.
        policy = task_policy.span_policy(session, task_row, min_reviews=min_reviews)
        audited = history.audited(session, task_id=task_row.id, source="student")
        return _report(session, task_row, policy, [machine == human for machine, human in audited])
    reviews = history.uniform_reviews(session, task_id=task_row.id) if reviews is None else reviews
    applied = task_policy.applied(session, task_row, reviews=reviews, min_reviews=min_reviews)
    stack, look = applied.labeler.stack, applied.labeler.look
    return _report(
        session,
        task_row,
        applied.policy,
        [r.machine == r.human for r in reviews if r.audit],
        labeler=None
        if stack is None or look is None
        else LabelerPublic(
            look=look, sources=list(stack.sources), weights=list(stack.weights), description=stack.describe()
        ),
        looks=labelers.looks_done(session, task_id=task_row.id),
        expected_reviews_to_target=task_policy.expected_reviews_to_target(session, task_row, reviews=reviews),
    )


def _report(
    session: Session,
    task_row: Task,
    policy: Policy,
    audit_correct: list[bool],
    *,
    labeler: LabelerPublic | None = None,
    looks: int = 0,
    expected_reviews_to_target: int | None = None,
) -> QualityPublic:
    counts = items.counts_by_state(session, task_id=task_row.id)
    human = review.human_count(session, task_id=task_row.id)
    summary = quality_summary(
        policy=policy,
        audit_correct=audit_correct,
        accepted=counts.get("accepted", 0),
        total=sum(count for state, count in counts.items() if state != "queued"),
        human_reviews=human,
    )
    return QualityPublic(
        **asdict(summary),
        certified_on=policy.fitted_on,
        labeler=labeler,
        looks=looks,
        review_budget=task_row.review_budget,
        reviews_left=None if task_row.review_budget is None else max(0, task_row.review_budget - human),
        target_coverage=task_row.target_coverage,
        expected_reviews_to_target=expected_reviews_to_target,
    )

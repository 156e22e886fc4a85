"""Running a review team: assignments and votes per item (admin), the reviewer's tasks, agreement and reviewer
accuracy, and the adjudication queue of items whose reviewers disagreed (a lead or an admin)."""

from __future__ import annotations

from fastapi import APIRouter, status

from service.api.deps import AdminDep, LeadDep, ReviewerDep, RowId, SessionDep
from service.api.schemas.review import (
    AccuracyPublic,
    AdjudicationCreate,
    AgreementPublic,
    AssignmentPublic,
    DisputedPublic,
    LabelAgreementPublic,
    PairPublic,
    ReviewerQualityPublic,
    ReviewSettingsPublic,
    ReviewSettingsUpdate,
    ReviewTaskPublic,
    VotePublic,
    WhoAmIPublic,
)
from service.pipeline.agreement import PairAgreement, ReviewerAccuracy
from service.store import review, review_quality, review_team, tasks
from service.tables import ReviewSettings

router = APIRouter(tags=["review team"])


@router.get("/v1/review/me", response_model=WhoAmIPublic)
def who_am_i(key: ReviewerDep) -> WhoAmIPublic:
    """The name reviews are recorded under (what an admin assigns tasks to) and the key's role."""
    return WhoAmIPublic(name=key.name, role=key.role)


@router.get("/v1/review/tasks", response_model=list[ReviewTaskPublic])
def my_tasks(session: SessionDep, key: ReviewerDep) -> list[ReviewTaskPublic]:
    """The tasks this key may review: those assigned to it, or all of them for an admin."""
    return [
        ReviewTaskPublic(name=task.name, waiting=review.waiting_count(session, task=task))
        for task in review_team.visible_tasks(session, key)
    ]


@router.get("/v1/tasks/{task}/reviewers", response_model=list[str])
def list_reviewers(task: str, session: SessionDep, _key: AdminDep) -> list[str]:
    return review_team.assigned_reviewers(session, task=tasks.get_task(session, task))


@router.put("/v1/tasks/{task}/reviewers/{reviewer}", response_model=AssignmentPublic)
def assign(task: str, reviewer: str, session: SessionDep, key: AdminDep) -> AssignmentPublic:
    task_row = tasks.get_task(session, task)
    row = review_team.assign(session, task=task_row, reviewer=reviewer, assigned_by=key.name)
    return AssignmentPublic(
        task=task_row.name, reviewer=row.reviewer, assigned_by=row.assigned_by, created_at=row.created_at
    )


@router.delete("/v1/tasks/{task}/reviewers/{reviewer}", status_code=status.HTTP_204_NO_CONTENT)
def unassign(task: str, reviewer: str, session: SessionDep, _key: AdminDep) -> None:
    review_team.unassign(session, task=tasks.get_task(session, task), reviewer=reviewer)


@router.get("/v1/tasks/{task}/review/settings", response_model=ReviewSettingsPublic)
def read_settings(task: str, session: SessionDep, key: ReviewerDep) -> ReviewSettingsPublic:
    row = review_team.review_settings(session, task_id=review_team.task_for(session, key, task).id)
    return _settings(row)


def _settings(row: ReviewSettings) -> ReviewSettingsPublic:
    return ReviewSettingsPublic(
        audit_reviewers=row.audit_reviewers,
        gold_reviewers=row.gold_reviewers,
        second_review_below=row.second_review_below,
        aggregate_at=row.aggregate_at,
    )


@router.put("/v1/tasks/{task}/review/settings", response_model=ReviewSettingsPublic)
def update_settings(task: str, body: ReviewSettingsUpdate, session: SessionDep, _key: AdminDep) -> ReviewSettingsPublic:
    """Reviewers needed per audit sample and per gold item, when a review item needs a second answer, and when the
    weighted aggregate settles answers that disagree; applies to answers given from now on."""
    row = review_team.update_settings(
        session,
        task=tasks.get_task(session, task),
        audit_reviewers=body.audit_reviewers,
        gold_reviewers=body.gold_reviewers,
        second_review_below=body.second_review_below,
        aggregate_at=body.aggregate_at,
    )
    return _settings(row)


def _accuracy(row: ReviewerAccuracy | None) -> AccuracyPublic | None:
    return AccuracyPublic(items=row.items, correct=row.correct, accuracy=row.accuracy) if row else None


def _pairs(pairs: list[PairAgreement]) -> list[PairPublic]:
    return [
        PairPublic(first=p.first, second=p.second, items=p.items, kappa=p.kappa, observed=p.observed, span_f1=p.span_f1)
        for p in pairs
    ]


@router.get("/v1/tasks/{task}/review/agreement", response_model=AgreementPublic)
def agreement(task: str, session: SessionDep, key: ReviewerDep) -> AgreementPublic:
    """Krippendorff's alpha over items with several answers, Cohen's kappa per reviewer pair, and each reviewer's
    accuracy on gold items, on audit samples decided by more than one human, and as the reviewer model estimates it."""
    task_row = review_team.task_for(session, key, task)
    report = review_quality.agreement_report(session, task=task_row)
    return AgreementPublic(
        task=task_row.name,
        items_with_several_votes=report.items_with_several_votes,
        krippendorff_alpha=report.alpha,
        pairs=_pairs(report.pairs),
        per_label=None
        if report.per_label is None
        else {
            label: LabelAgreementPublic(krippendorff_alpha=agreed.alpha, pairs=_pairs(agreed.pairs))
            for label, agreed in report.per_label.items()
        },
        reviewers=[
            ReviewerQualityPublic(
                reviewer=name,
                votes=count,
                gold=_accuracy(report.gold.get(name)),
                audit=_accuracy(report.audit.get(name)),
                estimated_accuracy=report.model.accuracy(name) if name in report.model.evidence else None,
                evidence=report.model.evidence.get(name, 0),
            )
            for name, count in sorted(report.votes.items())
        ],
    )


@router.get("/v1/tasks/{task}/adjudication", response_model=list[DisputedPublic])
def adjudication_queue(task: str, session: SessionDep, _key: LeadDep) -> list[DisputedPublic]:
    task_row = tasks.get_task(session, task)
    return [
        DisputedPublic(
            item_id=d.item.id,
            external_id=d.item.external_id,
            text=d.item.text,
            votes={name: tasks.public_label(task_row, answer) for name, answer in d.votes.items()},
            priority=d.entry.priority,
            reason=d.reason,
            machine=tasks.public_label(task_row, d.machine) if d.machine is not None else None,
            explanation=d.entry.explanation,
        )
        for d in review_quality.adjudication_queue(session, task=task_row)
    ]


@router.post("/v1/tasks/{task}/adjudication/{item_id}", response_model=VotePublic)
def adjudicate(task: str, item_id: RowId, body: AdjudicationCreate, session: SessionDep, key: LeadDep) -> VotePublic:
    task_row = tasks.get_task(session, task)
    label = review_quality.adjudicate(session, task=task_row, item_id=item_id, adjudicator=key.name, label=body.label)
    return VotePublic(
        item_id=item_id, label=tasks.public_label(task_row, label.label), status="final", votes=1, required=1
    )

"""Consistency checks (a lead or an admin): find near-identical items whose final labels differ, list the pairs
whose labels still differ, and send a pair to adjudication."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from service.api.deps import LeadDep, RowId, SessionDep
from service.api.schemas.consistency import CheckPublic, InconsistentPairPublic, PairItemPublic
from service.pipeline.consistency import DEFAULT_MIN_COSINE
from service.store import consistency, tasks
from service.tables import Task

router = APIRouter(prefix="/v1/tasks/{task}/consistency", tags=["review team"])

MinCosine = Annotated[float, Query(ge=0.5, le=1.0, description="Cosine at and above which two items count as alike.")]


@router.post("", response_model=CheckPublic, responses={202: {"model": CheckPublic, "description": "Queued as a job."}})
def run_check(
    task: str,
    request: Request,
    response: Response,
    session: SessionDep,
    _key: LeadDep,
    min_cosine: MinCosine = DEFAULT_MIN_COSINE,
) -> CheckPublic:
    """Compare the items labeled since the last check with every labeled item (all of them the first time, or
    when ``min_cosine`` changed) and keep the near-identical pairs whose final labels differ. A small check runs
    here (200); a large one (the first on a large task) is queued as a job (202, ``job_url``), and asking again
    while it waits or runs answers the same job."""
    started = time.perf_counter()
    outcome = consistency.run_or_queue(session, task=tasks.get_task(session, task), min_cosine=min_cosine)
    if isinstance(outcome, consistency.CheckResult):
        return CheckPublic(state="done", **vars(outcome), seconds=round(time.perf_counter() - started, 3))
    response.status_code = status.HTTP_202_ACCEPTED
    job_url = str(request.url_for("read_job", job_id=outcome.job.id))
    response.headers["Location"] = job_url
    return CheckPublic(
        state="queued",
        checked=outcome.new,
        compared_with=outcome.labeled,
        found=None,
        min_cosine=float(outcome.job.payload["min_cosine"]),
        seconds=None,
        job_id=outcome.job.id,
        job_url=job_url,
    )


@router.get("", response_model=list[InconsistentPairPublic])
def list_pairs(task: str, session: SessionDep, _key: LeadDep) -> list[InconsistentPairPublic]:
    """Pairs found and not yet sent to adjudication whose final labels still differ, the most alike first."""
    task_row = tasks.get_task(session, task)
    return [_public(task_row, p) for p in consistency.open_pairs(session, task=task_row)]


@router.post("/{pair_id}/adjudication", response_model=InconsistentPairPublic)
def send(task: str, pair_id: RowId, session: SessionDep, _key: LeadDep) -> InconsistentPairPublic:
    """Both items of the pair wait for a lead's final label on the adjudication page."""
    task_row = tasks.get_task(session, task)
    return _public(task_row, consistency.send_to_adjudication(session, task=task_row, pair_id=pair_id))


def _public(task: Task, found: consistency.OpenPair) -> InconsistentPairPublic:
    return InconsistentPairPublic(
        pair_id=found.pair.id,
        cosine=found.pair.cosine,
        first=PairItemPublic(
            item_id=found.first.id,
            external_id=found.first.external_id,
            text=found.first.text,
            label=tasks.public_label(task, found.first_label),
        ),
        second=PairItemPublic(
            item_id=found.second.id,
            external_id=found.second.external_id,
            text=found.second.text,
            label=tasks.public_label(task, found.second_label),
        ),
        found_at=found.pair.found_at,
    )

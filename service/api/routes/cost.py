"""The cost report: what a task's labels cost in model time and reviewers' time, and what the student saved."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy.orm import Session

from service.api.deps import ReaderDep, SessionDep, SettingsDep
from service.api.schemas.cost import CostPublic, PricesPublic, SourceCostPublic, StudentSavingPublic
from service.pipeline.cost import Prices, cost_report
from service.store import tasks, usage

router = APIRouter(prefix="/v1/tasks/{task}/cost", tags=["quality"])

ASSUMPTIONS = (
    "Models on the CPU are priced by the worker process's CPU seconds per vCPU-hour; on a GPU or a teacher server "
    "by the wall seconds the worker waited, per hour of that machine (as if it served this worker alone). "
    "Reviewers are priced by their working time, estimated from the gaps between their answers (a gap over "
    "2 minutes is a break). Imported labels cost nothing here."
)

Price = Annotated[float | None, Query(ge=0, le=1_000_000, description="Overrides the configured price.")]


@router.get("", response_model=CostPublic)
def read_cost(
    task: str,
    session: SessionDep,
    settings: SettingsDep,
    _key: ReaderDep,
    cpu_hour_usd: Price = None,
    gpu_hour_usd: Price = None,
    server_hour_usd: Price = None,
    reviewer_hour_usd: Price = None,
) -> CostPublic:
    configured = settings.cost
    prices = Prices(
        cpu_hour_usd=configured.cpu_hour_usd if cpu_hour_usd is None else cpu_hour_usd,
        gpu_hour_usd=configured.gpu_hour_usd if gpu_hour_usd is None else gpu_hour_usd,
        server_hour_usd=configured.server_hour_usd if server_hour_usd is None else server_hour_usd,
        reviewer_hour_usd=configured.reviewer_hour_usd if reviewer_hour_usd is None else reviewer_hour_usd,
    )
    return cost_of(session, task_id=tasks.get_task(session, task).id, prices=prices)


def cost_of(
    session: Session,
    *,
    task_id: int,
    prices: Prices,
    answered_at: dict[str, list[datetime]] | None = None,
    labeled: int | None = None,
) -> CostPublic:
    """The task's cost report at these prices (also on the lead's dashboard, which passes the answer times and the
    count of labeled items it has already read)."""
    file_rows = usage.file_rows(session, task_id=task_id)
    report = cost_report(
        usage=usage.totals(session, task_id=task_id),
        answered_at=usage.answer_times(session, task_id=task_id) if answered_at is None else answered_at,
        labeled=(usage.labeled_count(session, task_id=task_id) if labeled is None else labeled) + file_rows,
        imported=usage.imported_count(session, task_id=task_id),
        prices=prices,
    )
    human = sum(source.usd for source in report.sources if source.source == "human")
    saving = report.student_saving
    return CostPublic(
        prices=PricesPublic(**vars(prices)),
        sources=[
            SourceCostPublic(
                **asdict(source),
                gpu_seconds=source.seconds if source.runs_on in ("gpu", "server") else None,
                usd_per_1000=source.usd_per_1000,
            )
            for source in report.sources
        ],
        labeled=report.labeled,
        file_rows=file_rows,
        imported=report.imported,
        machine_usd=report.total_usd - human,
        human_usd=human,
        total_usd=report.total_usd,
        usd_per_1000_labeled=report.usd_per_1000_labeled,
        student_saving=None if saving is None else StudentSavingPublic(**vars(saving)),
        saving_note=report.saving_note,
        assumptions=ASSUMPTIONS,
    )

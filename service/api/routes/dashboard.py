"""The lead's dashboard at /ui/tasks/{task}: a server-rendered page (a lead or admin session, the review page's
login) with the task's progress, quality, reviewers, consistency pairs, guideline versions, students and cost, and
two forms (run a consistency check, send a pair to adjudication). Plots are SVG drawn by the server and each
figure's data downloads as CSV or JSON from /ui/tasks/{task}/data/{name}.{csv,json}."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import datetime
from typing import Literal, TypeVar, cast
from urllib.parse import quote

from fastapi import APIRouter, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session, sessionmaker

from service import dashboard
from service.api.routes.adjudication_page import STALE
from service.api.routes.cost import cost_of
from service.api.routes.quality import quality_of
from service.api.routes.review_page import checked_form, lead_session, templates
from service.config import Settings
from service.db import transaction
from service.errors import NotFound, ServiceError
from service.pipeline.consistency import DEFAULT_MIN_COSINE
from service.pipeline.cost import Prices
from service.store import consistency, review_team, tasks, web_sessions
from service.store import dashboard as store_dashboard
from service.tables import Task
from service.web import charts

router = APIRouter(prefix="/ui/tasks", include_in_schema=False)
CHARTS = ("timeline", "confusion", "accuracy")
SVG = "image/svg+xml"
PAIRS_SHOWN = 20
V = TypeVar("V")


def _task(session: Session, request: Request, name: str, who: web_sessions.LoggedIn) -> Task | Response:
    try:
        return tasks.get_task(session, name)
    except NotFound as exc:
        context = {"title": exc.title, "detail": exc.detail, "reviewer": who.key.name, "csrf": who.csrf_token}
        return templates.TemplateResponse(request, "error.html", context, status_code=exc.status)


@router.get("/{task}", response_class=HTMLResponse)
def page(task: str, request: Request, notice: str = "") -> Response:
    who = lead_session(request)
    if isinstance(who, Response):
        return who
    settings: Settings = request.app.state.settings
    factory: sessionmaker[Session] = request.app.state.sessions
    with factory() as session:
        row = _task(session, request, task, who)
        if isinstance(row, Response):
            return row
        task_row, kept = row, _Kept(request, session, row)
        reads = kept.reads()

        def figures() -> dict[str, object]:
            states = dashboard.states(reads)
            total = sum(int(s["items"] or 0) for s in states)
            return {
                "states": [{**s, "share": int(s["items"] or 0) / total if total else 0.0} for s in states],
                "total": total,
                "sources": dashboard.sources(reads),
                "quality": quality_of(
                    session, task_row, min_reviews=settings.policy.min_reviews, reviews=reads.uniform()
                ),
                "cost": cost_of(
                    session,
                    task_id=task_row.id,
                    prices=Prices(**settings.cost.model_dump()),
                    answered_at=reads.times(),
                    labeled=sum(reads.final_sources().values()),
                ),
                "accuracy": dashboard.accuracy(reads),
                "reviewers": dashboard.reviewers(reads),
                "students": dashboard.student_versions(reads),
                "to_adjudicate": review_team.adjudication_count(session, task=task_row),
                "pairs": dashboard.consistency_pairs(reads)[:PAIRS_SHOWN],
                "guidelines": dashboard.guideline_versions(reads),
            }

        context = {
            "task": row,
            "reviewer": who.key.name,
            "csrf": who.csrf_token,
            "notice": notice,
            "min_cosine": DEFAULT_MIN_COSINE,
            "checking": consistency.queued_check(session, task=task_row),
            **kept.get("page", figures),
        }
    return templates.TemplateResponse(request, "dashboard.html", context)


Figures = dict[tuple[int, str], tuple[tuple[int, ...], object]]
"""(task id, figure) -> the task state it was computed in (store.dashboard.version) and its value: the newest
only, so the cache holds one entry per task and figure however often the task changes."""


class _Kept:
    """The figures kept for one task, as one request sees them: the task's state (store.dashboard.version) is read
    once, and a figure computed in that state before is served as it was. A dashboard reloaded while nothing
    happened costs a handful of indexed lookups, not a pass over every review."""

    def __init__(self, request: Request, session: Session, task: Task) -> None:
        self.figures: Figures = request.app.state.dashboard_figures
        self.session, self.task = session, task
        self.state = store_dashboard.version(session, task_id=task.id)

    def get(self, name: str, compute: Callable[[], V]) -> V:
        found = self.figures.get((self.task.id, name))
        if found is not None and found[0] == self.state:
            return cast(V, found[1])
        value = compute()
        self.figures[(self.task.id, name)] = (self.state, value)
        return value

    def reads(self) -> dashboard.Reads:
        """The task's reads for the figures, the shared ones kept too: a page and the plots it loads next make one
        pass over the reviews, not four."""
        return dashboard.Reads(self.session, self.task, kept=self.get)


@router.get("/{task}/charts/{name}.svg")
def chart(task: str, name: str, request: Request) -> Response:
    who = lead_session(request)
    if isinstance(who, Response):
        return who
    if name not in CHARTS:
        raise NotFound(f"no chart {name!r}; the dashboard draws {', '.join(CHARTS)}", field="name")
    factory: sessionmaker[Session] = request.app.state.sessions
    with factory() as session:
        row = tasks.get_task(session, task)
        kept = _Kept(request, session, row)
        drawn = kept.get(
            f"chart {name}",
            lambda: _draw(name, dashboard.TABLES[name](kept.reads()), epsilon=row.epsilon),
        )
    return Response(drawn, media_type=SVG)


def _draw(name: str, table: dashboard.Table, *, epsilon: float) -> str:
    if name == "confusion":
        labels = [str(label) for label in dict.fromkeys(r["human"] for r in table)]
        cells = {(r["human"], r["machine"]): int(r["items"] or 0) for r in table}
        return charts.confusion(matrix=[[cells[(h, m)] for m in labels] for h in labels], labels=labels)
    if name == "accuracy":
        return charts.source_accuracy(
            sources=[str(r["source"]) for r in table],
            accuracy=[_number(r["accuracy"]) for r in table],
            lower=[_number(r["lower"]) for r in table],
            upper=[_number(r["upper"]) for r in table],
        )
    series = {key: [r for r in table if r["series"] == key] for key in ("coverage", "error_bound", "audit_error")}
    return charts.timeline(
        routed_at=[_when(r["at"]) for r in series["coverage"]],
        coverage=[float(_number(r["value"]) or 0.0) for r in series["coverage"]],
        bound_at=[_when(r["at"]) for r in series["error_bound"]],
        bound=[_number(r["value"]) for r in series["error_bound"]],
        audit_at=[_when(r["at"]) for r in series["audit_error"]],
        audit_error=[float(_number(r["value"]) or 0.0) for r in series["audit_error"]],
        epsilon=epsilon,
    )


def _number(cell: dashboard.Cell) -> float | None:
    return None if cell is None or isinstance(cell, str) else float(cell)


def _when(cell: dashboard.Cell) -> datetime:
    return datetime.fromisoformat(str(cell))


@router.get("/{task}/data/{name}.{fmt}")
def data(task: str, name: str, fmt: Literal["csv", "json"], request: Request) -> Response:
    who = lead_session(request)
    if isinstance(who, Response):
        return who
    if name not in dashboard.TABLES:
        raise NotFound(f"no table {name!r}; the dashboard has {', '.join(dashboard.TABLES)}", field="name")
    factory: sessionmaker[Session] = request.app.state.sessions
    with factory() as session:
        kept = _Kept(request, session, tasks.get_task(session, task))
        table = kept.get(f"data {name}", lambda: dashboard.TABLES[name](kept.reads()))
    filename = f'attachment; filename="{task}-{name}.{fmt}"'
    if fmt == "json":
        return Response(json.dumps(table), media_type="application/json", headers={"Content-Disposition": filename})
    buffer = io.StringIO()
    columns = list(table[0]) if table else []
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(table)
    return Response(buffer.getvalue(), media_type="text/csv", headers={"Content-Disposition": filename})


@router.post("/{task}/consistency")
async def check_now(task: str, request: Request) -> Response:
    """Run a consistency check (items labeled since the last one against every labeled item) from the page."""
    if (refused := await _refused(task, request)) is not None:
        return refused
    factory: sessionmaker[Session] = request.app.state.sessions
    with transaction(factory) as session:
        outcome = consistency.run_or_queue(session, task=tasks.get_task(session, task), min_cosine=DEFAULT_MIN_COSINE)
    if isinstance(outcome, consistency.Queued):
        return _back(
            task,
            f"a check of {outcome.new} new labels against {outcome.labeled} items runs in the background "
            f"(job {outcome.job.id}); its pairs appear here when it ends",
        )
    return _back(task, f"checked {outcome.checked} items against {outcome.compared_with}: {outcome.found} new pairs")


@router.post("/{task}/consistency/{pair_id}")
async def send_pair(task: str, pair_id: int, request: Request) -> Response:
    if (refused := await _refused(task, request)) is not None:
        return refused
    factory: sessionmaker[Session] = request.app.state.sessions
    try:
        with transaction(factory) as session:
            sent = consistency.send_to_adjudication(session, task=tasks.get_task(session, task), pair_id=pair_id)
    except ServiceError as exc:
        return _back(task, exc.detail)
    return _back(task, f"items {sent.first.id} and {sent.second.id} wait for adjudication")


async def _refused(task: str, request: Request) -> Response | None:
    """Where to send a form post that is not a lead's with the session's CSRF token; None for one that is."""
    who = lead_session(request)
    if isinstance(who, Response):
        return who
    return _back(task, STALE) if await checked_form(request, who) is None else None


def _back(task: str, notice: str) -> Response:
    return RedirectResponse(
        f"/ui/tasks/{quote(task)}?notice={quote(notice)}#consistency-panel", status_code=status.HTTP_303_SEE_OTHER
    )

"""The adjudication page at /ui/tasks/{task}/adjudication: a lead gives the final label of items whose reviewers
disagreed or whose audit answer contradicted a machine label the policy would have accepted, one item at a time,
from the keyboard (1-9 choose a label, Enter takes the weighted answer). Plain HTML forms: each answer is a POST
carrying the session's CSRF token, answered with a redirect to the next item."""

from __future__ import annotations

import json
from urllib.parse import quote

from fastapi import APIRouter, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session, sessionmaker

from service.api.routes.review_page import checked_form, lead_session, templates
from service.db import transaction
from service.errors import ServiceError
from service.store import answers, review_quality, review_team, tasks
from service.store.tasks import answer_values
from service.tables import Task

router = APIRouter(prefix="/ui/tasks", include_in_schema=False)
STALE = "the form is stale; reload the page"


@router.get("/{task}/adjudication", response_class=HTMLResponse)
def page(task: str, request: Request, done: str = "", error: str = "") -> Response:
    who = lead_session(request)
    if isinstance(who, Response):
        return who
    factory: sessionmaker[Session] = request.app.state.sessions
    with factory() as session:
        row = tasks.get_task(session, task)
        labels = answer_values(row)
        queue = review_quality.adjudication_queue(session, task=row, limit=1)
        choices: list[str] = list(labels or [])
        context: dict[str, object] = {
            "task": row,
            "reviewer": who.key.name,
            "csrf": who.csrf_token,
            "waiting": review_team.adjudication_count(session, task=row),
            "done": done,
            "error": error,
            "item": None,
        }
        if queue:
            disputed = queue[0]
            model = answers.of_task(session, task=row).reviewer_model(labels)
            known = {name: answer for name, answer in disputed.votes.items() if labels is None or answer in labels}
            suggestion, probability = model.aggregate(known) if known else (None, None)
            if row.kind != "single_label":
                # 2^k sets (or every span set of the text) are too many buttons: the lead chooses among the answers
                # in dispute.
                offered = [*disputed.votes.values(), disputed.machine, suggestion]
                choices = list(dict.fromkeys(value for value in offered if value is not None))
            context |= {
                "item": disputed.item,
                "reason": disputed.reason,
                "explanation": disputed.entry.explanation,
                "machine": disputed.machine,
                "votes": [
                    {
                        "reviewer": name,
                        "label": answer,
                        "accuracy": model.accuracy(name) if name in model.evidence else None,
                    }
                    for name, answer in disputed.votes.items()
                ],
                "suggestion": suggestion,
                "probability": probability,
            }
        text, machine = (queue[0].item.text, queue[0].machine) if queue else ("", None)
        shown = [*choices, *([machine] if machine is not None else [])]
        context |= {
            "labels": choices,
            "shown": {value: _shown(row, value, text) for value in shown},
            "submitted": {value: _submitted(row, value) for value in shown},
        }
    return templates.TemplateResponse(request, "adjudicate.html", context)


def _shown(task: Task, value: str, text: str) -> str:
    """A label as the page writes it: a multi-label set as its labels, a span set as each span's words and label,
    or "no label"."""
    public = tasks.public_label(task, value)
    if isinstance(public, str):
        return public
    parts = [
        part if isinstance(part, str) else f"{text[int(part['start']) : int(part['end'])]} → {part['label']}"
        for part in public
    ]
    return ", ".join(parts) or "no label"


def _submitted(task: Task, value: str) -> str:
    """What the page's form sends for a stored label: the label, a label set's name, or a span set's spans."""
    return json.dumps(tasks.public_label(task, value)) if task.kind == "spans" else value


@router.post("/{task}/adjudication/{item_id}")
async def adjudicate(task: str, item_id: int, request: Request) -> Response:
    who = lead_session(request)
    if isinstance(who, Response):
        return who
    form = await checked_form(request, who)
    back = f"/ui/tasks/{quote(task)}/adjudication"
    if form is None:
        return RedirectResponse(f"{back}?error={quote(STALE)}", status.HTTP_303_SEE_OTHER)
    label = form.get("label", "")
    factory: sessionmaker[Session] = request.app.state.sessions
    try:
        with transaction(factory) as session:
            row = tasks.get_task(session, task)
            review_quality.adjudicate(session, task=row, item_id=item_id, adjudicator=who.key.name, label=label)
    except ServiceError as exc:
        return RedirectResponse(f"{back}?error={quote(exc.detail)}", status.HTTP_303_SEE_OTHER)
    return RedirectResponse(f"{back}?done={quote(f'#{item_id} {label}')}", status.HTTP_303_SEE_OTHER)

"""The review page at /review: a login form that turns a reviewer's API key into a server-side session (the
HttpOnly cookie holds an opaque token, never the key), the reviewer's tasks, and the keyboard-first page itself
(plain HTML and one small script, no build step). The page sends the session's CSRF token with every change."""

from __future__ import annotations

import hmac
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, status
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markdown_it import MarkdownIt
from markupsafe import Markup
from sqlalchemy.orm import Session, sessionmaker

from service.api.deps import SESSION_COOKIE, lookup_key, lookup_session
from service.errors import Forbidden, NotFound
from service.store import guidelines, review, review_team, web_sessions
from service.store.keys import SEES_EVERY_TASK
from service.tables import ApiKey

WEB_DIR = Path(__file__).resolve().parent.parent.parent / "web"
STATIC_FILES = {
    "review.js": "text/javascript",
    "span_editor.js": "text/javascript",
    "adjudicate.js": "text/javascript",
    "review.css": "text/css",
}
SESSION_MAX_AGE_S = 12 * 3600
PAGE_ROLES = ("reviewer", "lead", "admin")

templates = Jinja2Templates(directory=WEB_DIR / "templates")
MARKDOWN = MarkdownIt("commonmark", {"html": False})
"""Guidelines are Markdown; raw HTML in them is shown as text, so a guideline cannot run script on the page."""
router = APIRouter(prefix="/review", include_in_schema=False)


def session_of(request: Request, roles: tuple[str, ...] = PAGE_ROLES) -> web_sessions.LoggedIn | None:
    """The session the cookie names, if it is live and its key has one of ``roles``."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    found = lookup_session(request.app.state.sessions, token)
    if isinstance(found, web_sessions.LoggedIn) and found.key.role in roles:
        return found
    return None


def lead_session(request: Request) -> web_sessions.LoggedIn | Response:
    """The session of a lead or admin, or where to send anyone else: to log in, or an error page for a reviewer
    (the dashboard and adjudication pages)."""
    found = session_of(request)
    if found is None:
        return RedirectResponse("/review", status_code=status.HTTP_303_SEE_OTHER)
    if found.key.role not in SEES_EVERY_TASK:
        context = {
            "title": "Forbidden",
            "detail": f"This page is for leads and admins; {found.key.name!r} is a {found.key.role} key.",
            "reviewer": found.key.name,
            "csrf": found.csrf_token,
        }
        return templates.TemplateResponse(request, "error.html", context, status_code=status.HTTP_403_FORBIDDEN)
    return found


async def checked_form(request: Request, who: web_sessions.LoggedIn) -> dict[str, str] | None:
    """A page's urlencoded form (one value a field), or None when it does not carry the session's CSRF token."""
    form = {name: values[0] for name, values in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
    return form if hmac.compare_digest(form.get("csrf", ""), who.csrf_token) else None


def _login_page(request: Request, error: str | None = None, code: int = status.HTTP_200_OK) -> HTMLResponse:
    return templates.TemplateResponse(request, "login.html", {"error": error, "reviewer": None}, status_code=code)


@router.get("", response_class=HTMLResponse)
def home(request: Request) -> Response:
    logged_in = session_of(request)
    if logged_in is None:
        return _login_page(request)
    key = logged_in.key
    factory: sessionmaker[Session] = request.app.state.sessions
    with factory() as session:
        visible = [
            (task.name, review.waiting_count(session, task=task)) for task in review_team.visible_tasks(session, key)
        ]
    if len(visible) == 1:
        return RedirectResponse(f"/review/{visible[0][0]}", status_code=status.HTTP_303_SEE_OTHER)
    tasks = [{"name": name, "waiting": waiting} for name, waiting in visible]
    context = {
        "tasks": tasks,
        "reviewer": key.name,
        "csrf": logged_in.csrf_token,
        "lead": key.role in SEES_EVERY_TASK,
    }
    return templates.TemplateResponse(request, "tasks.html", context)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    # A plain urlencoded form: one field, parsed here so the page needs no form library.
    form = parse_qs((await request.body()).decode("utf-8", errors="replace"))
    plain = (form.get("key") or [""])[0].strip()
    key = lookup_key(request.app.state.sessions, plain) if plain else None
    if not isinstance(key, ApiKey):
        detail = key.detail if key is not None else "this API key is not known"
        return _login_page(request, f"{detail[0].upper()}{detail[1:]}.", status.HTTP_401_UNAUTHORIZED)
    if key.role not in PAGE_ROLES:
        return _login_page(request, f"A {key.role} key cannot review; use a reviewer key.", status.HTTP_403_FORBIDDEN)
    factory: sessionmaker[Session] = request.app.state.sessions
    with factory() as session, session.begin():
        token, _ = web_sessions.start(session, key, lifetime=timedelta(seconds=SESSION_MAX_AGE_S))
    response = RedirectResponse("/review", status_code=status.HTTP_303_SEE_OTHER)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=SESSION_MAX_AGE_S,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the session (the form carries its CSRF token) and drop the cookie."""
    form = parse_qs((await request.body()).decode("utf-8", errors="replace"))
    logged_in = session_of(request)
    if logged_in is not None and hmac.compare_digest((form.get("csrf") or [""])[0], logged_in.csrf_token):
        factory: sessionmaker[Session] = request.app.state.sessions
        with factory() as session, session.begin():
            web_sessions.end(session, request.cookies[SESSION_COOKIE])
        request.app.state.session_cache.clear()
    response = RedirectResponse("/review", status_code=status.HTTP_303_SEE_OTHER)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/static/{name}")
def static(name: str) -> Response:
    if name not in STATIC_FILES:
        raise NotFound(f"no static file {name!r}")
    return FileResponse(WEB_DIR / "static" / name, media_type=STATIC_FILES[name], headers={"Cache-Control": "no-cache"})


@router.get("/{task}", response_class=HTMLResponse)
def page(task: str, request: Request) -> Response:
    logged_in = session_of(request)
    if logged_in is None:
        return RedirectResponse("/review", status_code=status.HTTP_303_SEE_OTHER)
    key, csrf = logged_in.key, logged_in.csrf_token
    factory: sessionmaker[Session] = request.app.state.sessions
    with factory() as session:
        try:
            task_row = review_team.task_for(session, key, task)
        except (Forbidden, NotFound) as exc:
            context: dict[str, object] = {
                "title": exc.title,
                "detail": exc.detail,
                "reviewer": key.name,
                "csrf": csrf,
            }
            return templates.TemplateResponse(request, "error.html", context, status_code=exc.status)
        labels = [
            {"name": str(label["name"]), "description": str(label.get("description", ""))} for label in task_row.labels
        ]
        guide = guidelines.current(session, task=task_row)
        context = {
            "task": task_row,
            "guidelines_version": guide.version,
            "guidelines_html": Markup(MARKDOWN.render(guide.text)),
            "labels": labels,
            "reviewer": key.name,
            "csrf": csrf,
            "lead": key.role in SEES_EVERY_TASK,
        }
        return templates.TemplateResponse(request, "review.html", context)

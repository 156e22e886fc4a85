"""FastAPI dependencies as Annotated aliases: SessionDep, SettingsDep and role-checked API keys."""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from typing import Annotated, TypeVar

from fastapi import Depends, Path, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session, sessionmaker

from service.api.cache import TtlCache
from service.api.limits import RateLimiter
from service.config import Settings
from service.errors import Forbidden, NotFound, RateLimited, Unauthorized
from service.store import keys, tasks, web_sessions
from service.tables import ApiKey, utcnow

Credential = TypeVar("Credential", ApiKey, web_sessions.LoggedIn)

SESSION_COOKIE = "understudy_session"
"""The review page's cookie: an opaque session token (store.web_sessions), never the API key."""
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


# The light dependencies are coroutines: FastAPI runs a plain `def` dependency in the thread pool, and each hop
# there waits for the GIL behind busy threads, which under 20 concurrent reviewers added to every request.
async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    factory: sessionmaker[Session] = request.app.state.sessions
    with factory() as session, session.begin():
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
# scope="function": the transaction commits before the response is sent, so a client that got 201 can read what
# it made at once, and a commit that fails is the client's error (503), not a lost write after a success.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]

MAX_ROW_ID = 2**31 - 1
"""The largest id a row can have on both stores (the id columns are INTEGER, 32-bit on PostgreSQL): a larger one in
a URL is a 422, not a driver overflow."""
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]


def presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.headers.get("x-api-key") or None


KEY_CACHE_S = 10.0
"""Known keys (and sessions, and tasks' projects) are remembered this long, so a request does not spend a
transaction on them. A key revoked or rotated through this process stops working here at once (the cache is
cleared), in other processes within this."""


def lookup_key(factory: sessionmaker[Session], plain: str) -> ApiKey | keys.Refusal:
    """The live key whose secret is ``plain``, read (and its last use recorded) in a session of its own; else why
    it may not be used."""
    now = utcnow()
    with factory() as session:
        found = keys.find_key(session, plain, now=now)
        if isinstance(found, ApiKey) and keys.touch(found, now):
            session.commit()
        return found


def lookup_session(factory: sessionmaker[Session], token: str) -> web_sessions.LoggedIn | keys.Refusal:
    with factory() as session:
        return web_sessions.find(session, token, now=utcnow())


async def authenticate(request: Request) -> ApiKey:
    plain = presented_key(request)
    if plain:
        return _within_rate(request, await _key_of(request, plain))
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise Unauthorized("send an API key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
    logged_in = await _session_of(request, token)
    # The cookie goes with any request the browser sends; one that changes something must also prove it came
    # from the page, which alone knows the session's CSRF token.
    sent = request.headers.get(CSRF_HEADER, "")
    if request.method not in SAFE_METHODS and not hmac.compare_digest(sent, logged_in.csrf_token):
        raise Forbidden(f"a request made with the review page's session must carry its {CSRF_HEADER} header")
    return _within_rate(request, logged_in.key)


async def _key_of(request: Request, plain: str) -> ApiKey:
    return await _remembered(request.app.state.key_cache, request, plain, lookup_key, keys.refusal)


async def _session_of(request: Request, token: str) -> web_sessions.LoggedIn:
    """The live session with this token, remembered like keys (a logout through this process forgets it)."""
    return await _remembered(request.app.state.session_cache, request, token, lookup_session, web_sessions.refusal)


async def _remembered(
    cache: TtlCache[str, Credential],
    request: Request,
    secret: str,
    lookup: Callable[[sessionmaker[Session], str], Credential | keys.Refusal],
    refusal: Callable[[Credential, datetime], keys.Refusal | None],
) -> Credential:
    """What ``secret`` stands for, read by ``lookup`` and remembered by its hash; one remembered is checked again
    with ``refusal``, as it may have expired since it was read."""
    digest = keys.hash_key(secret)
    remembered = cache.get(digest)
    if remembered is None:
        found = await run_in_threadpool(lookup, request.app.state.sessions, secret)
        if isinstance(found, keys.Refusal):
            raise Unauthorized(found.detail)
        return cache.put(digest, found)
    if refused := refusal(remembered, utcnow()):
        raise Unauthorized(refused.detail)
    return remembered


async def _project_of(request: Request, task: str) -> str | None:
    """The task's project (None: no such task); a task never changes project."""
    cache: TtlCache[str, str | None] = request.app.state.project_cache
    return await cache.get_or_load(task, lambda: _read_project(request.app.state.sessions, task))


def _read_project(factory: sessionmaker[Session], task: str) -> str | None:
    with factory() as session:
        return tasks.project_of(session, task)


def _within_rate(request: Request, key: ApiKey) -> ApiKey:
    limiter: RateLimiter = request.app.state.rate_limiter
    wait = limiter.wait_s(key.id, time.monotonic())
    if wait > 0:
        raise RateLimited(
            f"key {key.name!r} is over its rate limit ({limiter.per_s:g} requests a second, {limiter.burst} at once)",
            retry_after_s=wait,
        )
    return key


def require(*roles: str) -> Callable[[Request], Awaitable[ApiKey]]:
    """A dependency admitting keys whose role is one of `roles`; admin is always admitted."""

    async def check(request: Request) -> ApiKey:
        key = await authenticate(request)
        if key.role != "admin" and key.role not in roles:
            raise Forbidden(f"role {key.role!r} may not do this; needs one of {sorted({*roles, 'admin'})}")
        task = request.path_params.get("task")
        if key.project is not None and task is not None and await _project_of(request, task) != key.project:
            # The same answer as for a task that does not exist: a key learns nothing of other projects.
            raise NotFound(f"no task named {task!r}", field="task")
        return key

    return check


ClientDep = Annotated[ApiKey, Depends(require("client"))]
ReviewerDep = Annotated[ApiKey, Depends(require("reviewer", "lead"))]
LeadDep = Annotated[ApiKey, Depends(require("lead"))]
ReaderDep = Annotated[ApiKey, Depends(require("client", "reviewer", "lead"))]
AdminDep = Annotated[ApiKey, Depends(require())]

"""FastAPI dependencies as Annotated aliases: SessionDep, SettingsDep and role-checked API keys."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session, sessionmaker

from service.api.limits import RateLimiter
from service.config import Settings
from service.errors import Forbidden, RateLimited, Unauthorized
from service.store import keys
from service.tables import ApiKey, utcnow

SESSION_COOKIE = "understudy_key"


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
SessionDep = Annotated[Session, Depends(get_session)]

MAX_ROW_ID = 2**31 - 1
"""The largest id a row can have on both stores (the id columns are INTEGER, 32-bit on PostgreSQL): a larger one in
a URL is a 422, not a driver overflow."""
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]


def presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.headers.get("x-api-key") or request.cookies.get(SESSION_COOKIE)


KEY_CACHE_S = 10.0
"""Known keys are remembered this long, so a request does not spend a transaction on authentication. A key revoked
or rotated through this process stops working here at once (the cache is cleared), in other processes within this."""


def lookup_key(factory: sessionmaker[Session], plain: str) -> ApiKey | keys.Refusal:
    """The live key whose secret is ``plain``, read (and its last use recorded) in a session of its own; else why
    it may not be used."""
    now = utcnow()
    with factory() as session:
        found = keys.find_key(session, plain, now=now)
        if isinstance(found, ApiKey) and keys.touch(found, now):
            session.commit()
        return found


async def authenticate(request: Request) -> ApiKey:
    plain = presented_key(request)
    if not plain:
        raise Unauthorized("send an API key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
    cache: dict[str, tuple[float, ApiKey]] = request.app.state.key_cache
    digest = keys.hash_key(plain)
    cached = cache.get(digest)
    if cached is not None and cached[0] > time.monotonic():
        # A cached key may have expired since it was read.
        if refused := keys.refusal(cached[1], utcnow()):
            raise Unauthorized(refused.detail)
        return _within_rate(request, cached[1])
    key = await run_in_threadpool(lookup_key, request.app.state.sessions, plain)
    if isinstance(key, keys.Refusal):
        raise Unauthorized(key.detail)
    cache[digest] = (time.monotonic() + KEY_CACHE_S, key)
    return _within_rate(request, key)


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
        return key

    return check


ClientDep = Annotated[ApiKey, Depends(require("client"))]
ReviewerDep = Annotated[ApiKey, Depends(require("reviewer"))]
ReaderDep = Annotated[ApiKey, Depends(require("client", "reviewer"))]
AdminDep = Annotated[ApiKey, Depends(require())]

"""One problem+json envelope (RFC 9457) for every failure, and the handlers that produce it."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_BASE = "https://understudy.dev/problems/"
log = logging.getLogger("understudy.errors")


class ServiceError(Exception):
    """A failure the client can act on. `kind` is the stable problem type; `field` names the input at fault."""

    status = 400
    kind = "bad-request"
    title = "Bad request"
    retry_after_s: float | None = None
    """When set, the client may retry after this many seconds (a Retry-After header)."""

    def __init__(self, detail: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.extra = extra


class NotFound(ServiceError):
    status, kind, title = 404, "not-found", "Not found"


class Conflict(ServiceError):
    status, kind, title = 409, "conflict", "Conflict"


class Invalid(ServiceError):
    status, kind, title = 422, "invalid-input", "Invalid input"


class MalformedJson(ServiceError):
    status, kind, title = 400, "malformed-json", "Malformed JSON"


def json_position(text: str, position: int) -> str:
    """``line L, column C`` of a character offset, as json and editors count them (from 1)."""
    before = text[:position]
    return f"line {before.count(chr(10)) + 1}, column {position - before.rfind(chr(10))}"


class Unauthorized(ServiceError):
    status, kind, title = 401, "unauthorized", "Missing or unknown API key"


class Forbidden(ServiceError):
    status, kind, title = 403, "forbidden", "This key's role may not do that"


class TooLarge(ServiceError):
    status, kind, title = 413, "payload-too-large", "Request body too large"


class RateLimited(ServiceError):
    status, kind, title = 429, "rate-limited", "Too many requests"

    def __init__(self, detail: str, *, retry_after_s: float) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


def problem(
    status: int,
    kind: str,
    title: str,
    detail: str,
    *,
    field: str | None = None,
    retry_after_s: float | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": PROBLEM_BASE + kind, "title": title, "status": status, "detail": detail}
    if field is not None:
        body["field"] = field
    body.update(extra)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    if retry_after_s is not None:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after_s)))
    return JSONResponse(body, status_code=status, media_type="application/problem+json", headers=headers)


def _field_of(location: Sequence[Any]) -> str:
    parts = [str(part) for part in location if part not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


async def _service_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return problem(
        exc.status, exc.kind, exc.title, exc.detail, field=exc.field, retry_after_s=exc.retry_after_s, **exc.extra
    )


DATABASE_RETRY_S = 5.0


async def _database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    """The database is down, locked for too long, or full: nothing was stored, and the client may retry."""
    log.warning("database unavailable: %s", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    return problem(
        503,
        "database-unavailable",
        "Database unavailable",
        "the database cannot be reached or written now; nothing was stored, retry later",
        retry_after_s=DATABASE_RETRY_S,
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request", "type": "value_error"}
    if first.get("type") == "json_invalid":
        loc = first.get("loc", ())
        where = ""
        if len(loc) > 1 and isinstance(loc[1], int):
            where = f" at {json_position((await request.body()).decode('utf-8', errors='replace'), loc[1])}"
        ctx = first.get("ctx")
        reason = str(ctx.get("error", "")).strip() if isinstance(ctx, dict) else ""
        detail = f"the request body is not valid JSON{': ' + reason if reason else ''}{where}"
        return problem(400, "malformed-json", "Malformed JSON", detail, field="body")
    field = _field_of(first.get("loc", ()))
    detail = f"{field}: {first.get('msg', 'invalid value')}"
    issues = [{"field": _field_of(e.get("loc", ())), "message": e.get("msg", "")} for e in errors[:20]]
    return problem(422, "invalid-input", "Invalid input", detail, field=field, errors=issues)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    kinds = {404: "not-found", 405: "method-not-allowed", 413: "payload-too-large"}
    kind = kinds.get(exc.status_code, "http-error")
    return problem(exc.status_code, kind, kind.replace("-", " ").capitalize(), str(exc.detail))


async def _unexpected_error(_request: Request, _exc: Exception) -> JSONResponse:
    return problem(500, "internal-error", "Internal error", "an unexpected error occurred; it has been logged")


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_exception_handler(Exception, _unexpected_error)

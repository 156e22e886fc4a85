"""Every HTTP request gets a request id (the caller's X-Request-ID when it sends a sane one), echoed in the
response and carried by every log line written while it is served; its latency goes into a histogram by route
template, and one access log line records it."""

from __future__ import annotations

import logging
import re
import time
import uuid

from prometheus_client import Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.logs import request_id

REQUEST_SECONDS = Histogram(
    "understudy_http_request_duration_seconds",
    "Latency of HTTP requests, by method, route template and status code.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
log = logging.getLogger("understudy.http")


class RequestObservation:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = dict(scope.get("headers", [])).get(b"x-request-id", b"").decode("latin-1")
        current = sent if SANE_ID.match(sent) else uuid.uuid4().hex
        token = request_id.set(current)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message["headers"] = [*message.get("headers", []), (b"x-request-id", current.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            # The template (/v1/tasks/{task}/quality), not the path, so a label's values stay few.
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            REQUEST_SECONDS.labels(method=scope["method"], route=route, status=str(status)).observe(seconds)
            log.info(
                "%s %s %s",
                scope["method"],
                route,
                status,
                extra={
                    "method": scope["method"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1e3, 2),
                },
            )
            request_id.reset(token)

"""A pure ASGI middleware that refuses request bodies over the configured size with 413, before parsing."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import PROBLEM_BASE


class BodySizeLimit:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, counting_receive, send)
        except _TooLarge:
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            {
                "type": PROBLEM_BASE + "payload-too-large",
                "title": "Request body too large",
                "status": 413,
                "detail": f"the request body is over the limit of {self.max_bytes} bytes",
                "field": "body",
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


class RateLimiter:
    """A token bucket per API key, in this process: ``per_s`` requests a second on average, ``burst`` at once.
    Behind N API replicas a key gets up to N times the rate. ``per_s`` 0 turns it off."""

    def __init__(self, *, per_s: float, burst: int) -> None:
        self.per_s = per_s
        self.burst = max(1, burst)
        self._buckets: dict[int, tuple[float, float]] = {}
        """key id -> (tokens, when they were counted)."""

    def wait_s(self, key_id: int, now: float) -> float:
        """Take a token for this key: 0 when it had one, else the seconds until it will (nothing is taken)."""
        if self.per_s <= 0:
            return 0.0
        tokens, then = self._buckets.get(key_id, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.per_s)
        if tokens >= 1.0:
            self._buckets[key_id] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key_id] = (tokens, now)
        return (1.0 - tokens) / self.per_s

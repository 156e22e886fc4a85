"""Several teacher servers behind one client: each request goes to the server with the fewest requests in flight,
and a server that cannot be reached is set aside for a while, so its requests go to the others."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

DOWN_S = 30.0
"""How long an unreachable server is left out before it is tried again."""


class ServerPool:
    def __init__(self, urls: Sequence[str], *, down_s: float = DOWN_S, clock: Callable[[], float] = time.monotonic):
        if not urls:
            raise ValueError("the teacher needs at least one server URL")
        self.urls = tuple(dict.fromkeys(url.rstrip("/") for url in urls))
        self._in_flight = dict.fromkeys(self.urls, 0)
        self._down_until = dict.fromkeys(self.urls, 0.0)
        self._down_s = down_s
        self._clock = clock
        self._lock = threading.Lock()
        self._turns = 0
        """Requests leased so far: ties go round, so quick answers still spread over every server."""

    def up(self) -> list[str]:
        """The servers not set aside now."""
        now = self._clock()
        with self._lock:
            return [url for url in self.urls if self._down_until[url] <= now]

    @contextmanager
    def lease(self) -> Iterator[str]:
        """The server to send one request to: the reachable one with the fewest requests in flight (in turn on a
        tie), or, when every one is set aside, the one that comes back first."""
        now = self._clock()
        with self._lock:
            reachable = [url for url in self.urls if self._down_until[url] <= now]
            if reachable:
                fewest = min(self._in_flight[u] for u in reachable)
                idle = [u for u in reachable if self._in_flight[u] == fewest]
                url = idle[self._turns % len(idle)]
            else:
                url = min(self.urls, key=lambda u: self._down_until[u])
            self._turns += 1
            self._in_flight[url] += 1
        try:
            yield url
        finally:
            with self._lock:
                self._in_flight[url] -= 1

    def mark_down(self, url: str) -> None:
        with self._lock:
            self._down_until[url] = self._clock() + self._down_s

    def mark_up(self, url: str) -> None:
        with self._lock:
            self._down_until[url] = 0.0

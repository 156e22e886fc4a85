"""A small in-process cache whose entries expire: what the API remembers between requests (keys, sessions, a
task's project, the promoted student) so a request does not spend a database transaction on it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

from fastapi.concurrency import run_in_threadpool

PRUNE_AT = 4096
"""Entries held before the expired ones are dropped."""
K = TypeVar("K")
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[K, tuple[float, V]] = {}

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        return entry[1] if entry is not None and entry[0] > time.monotonic() else None

    def put(self, key: K, value: V) -> V:
        now = time.monotonic()
        if len(self._entries) >= PRUNE_AT:
            # Expired entries are otherwise only replaced: a client asking for many names must not grow it forever.
            self._entries = {k: entry for k, entry in self._entries.items() if entry[0] > now}
        self._entries[key] = (now + self.ttl_s, value)
        return value

    async def get_or_load(self, key: K, load: Callable[[], V]) -> V:
        """The fresh entry, else ``load()`` run in the thread pool (it reads the database) and remembered."""
        entry = self._entries.get(key)
        if entry is not None and entry[0] > time.monotonic():
            return entry[1]
        return self.put(key, await run_in_threadpool(load))

    def forget(self, key: K) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

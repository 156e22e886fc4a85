"""Micro-batching for online prediction: texts from concurrent requests are scored together, one model call per
batch in a worker thread, so 20 clients sending one text each cost a few model calls rather than 20. A result is
whatever the model gives per text: a row of probabilities, or a span set and its confidence."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

MAX_BATCH = 256
"""Texts scored in one model call at most."""
MAX_WAIT_S = 0.002
"""How long the first text of a batch waits for others to join it."""


Result = TypeVar("Result")


@dataclass
class _Waiting(Generic[Result]):
    texts: Sequence[str]
    done: asyncio.Future[list[Result]] = field(repr=False)


class MicroBatcher(Generic[Result]):
    def __init__(
        self,
        score: Callable[[Sequence[str]], list[Result]],
        *,
        max_batch: int = MAX_BATCH,
        max_wait_s: float = MAX_WAIT_S,
    ) -> None:
        self._score = score
        self._max_batch = max_batch
        self._max_wait_s = max_wait_s
        self._queue: asyncio.Queue[_Waiting[Result]] | None = None
        self._runner: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def predict(self, texts: Sequence[str]) -> list[Result]:
        """One result per text, scored together with whatever other requests are waiting."""
        loop = asyncio.get_running_loop()
        if self._queue is None or self._runner is None or self._runner.done() or self._loop is not loop:
            # The first call in this event loop (a server has one; a test client may open another) starts the runner.
            self._queue, self._loop = asyncio.Queue(), loop
            self._runner = loop.create_task(self._run(self._queue))
        waiting: _Waiting[Result] = _Waiting(texts, loop.create_future())
        await self._queue.put(waiting)
        return await waiting.done

    async def _run(self, queue: asyncio.Queue[_Waiting[Result]]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            size = len(batch[0].texts)
            deadline = loop.time() + self._max_wait_s
            while size < self._max_batch and (left := deadline - loop.time()) > 0:
                try:
                    batch.append(await asyncio.wait_for(queue.get(), left))
                except TimeoutError:
                    break
                size += len(batch[-1].texts)
            texts = [text for waiting in batch for text in waiting.texts]
            try:
                results = await loop.run_in_executor(None, self._score, texts)
            except Exception as exc:  # every request of the batch gets the failure, none hangs
                for waiting in batch:
                    if not waiting.done.done():
                        waiting.done.set_exception(exc)
                continue
            start = 0
            for waiting in batch:
                stop = start + len(waiting.texts)
                if not waiting.done.done():
                    waiting.done.set_result(results[start:stop])
                start = stop

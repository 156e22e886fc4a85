"""The worker `understudy bench scale` runs: the service's own worker (job loop, teacher client, scoring, routing,
storing) with a stand-in embedder that sleeps a fixed time per text, as the real MiniLM takes on a core of its
own. Four workers on a 2-core machine would otherwise measure four processes sharing two cores for embeddings
(the real embedder here: 95 texts/s on one thread, bfloat16), not how chunk jobs spread over workers, which is
what scaling out adds: each new worker brings its own CPU.

    python -m service.bench.scale_worker --embed-ms 10
"""

from __future__ import annotations

import argparse
import hashlib
import threading
import time
from collections.abc import Sequence

import numpy as np

from service import logs
from service.config import get_settings
from service.jobs import worker
from service.jobs.context import WorkerContext
from service.main import settle_heap
from service.ports import FloatArray

DIMENSION = 384


class SleepingEmbedder:
    """Sleeps ``delay_s`` per text and returns a unit vector drawn from the text's hash: the same text, the same
    vector; different texts, near-orthogonal ones (so kNN finds no false neighbours)."""

    model_name = "stand-in-embedder"

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s

    def embed(self, texts: Sequence[str]) -> FloatArray:
        time.sleep(self.delay_s * len(texts))
        rows = [
            np.random.default_rng(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")).normal(
                size=DIMENSION
            )
            for text in texts
        ]
        vectors = np.asarray(rows, dtype=np.float64).reshape(len(texts), DIMENSION)
        result: FloatArray = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embed-ms", type=float, default=10.0, help="The stand-in embedder's sleep per text.")
    args = parser.parse_args()
    settings = get_settings()
    logs.configure(settings.log_format)
    ctx = WorkerContext.from_settings(settings)
    ctx.embedder_factory = lambda: SleepingEmbedder(args.embed_ms / 1000)
    settle_heap()
    worker.run(ctx, stop=threading.Event())


if __name__ == "__main__":
    main()

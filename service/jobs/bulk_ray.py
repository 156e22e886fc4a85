"""Bulk labeling on Ray Data (`understudy label FILE --engine ray`): the same cascade, on a pool of actors.

The pipeline is read -> map_batches -> the driver: rows are read in blocks of one chunk by the same reader as the
single-process path (so both see the same texts, ids and errors), each actor holds the models (the promoted
student; the teacher through the configured backend, vLLM servers for a cluster) and labels whole chunks with
`bulk_label.label_chunk`, and the driver writes the lines in input order to the same resumable JSONL. A chunk
holds the same rows under the same row numbers as in the single-process run, so every row gets the same label,
confidence and reasons. (One exception: a task with no labeled pool at all calibrates zero-shot teacher scores on
the recent batches each process has seen, and those differ between actors.)
"""

from __future__ import annotations

import functools
import itertools
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from service.config import Settings
from service.errors import ServiceError
from service.jobs import bulk_label
from service.jobs.context import WorkerContext


class _ChunkLabeler:
    """A Ray actor: builds its own worker context and labels one chunk per call."""

    def __init__(self, settings: Settings, task_name: str, escalate_to_teacher: bool) -> None:
        self.ctx = WorkerContext.from_settings(settings)
        self.plan = bulk_label.plan_bulk(self.ctx, task_name=task_name, escalate_to_teacher=escalate_to_teacher)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        rows = [int(row) for row in batch["row"]]
        chunk = list(zip((str(i) for i in batch["id"]), (str(t) for t in batch["text"]), strict=True))
        records = bulk_label.label_chunk(self.ctx, self.plan, rows, chunk)
        return {
            "line": [json.dumps(record) for record in records],
            "source": [record["source"] for record in records],
            "accepted": [record["accepted"] for record in records],
        }


def _datasource(
    path: Path, text_field: str, id_field: str | None, start: int, stop: int, parts: int
) -> tuple[Any, int]:
    """A datasource of rows ``start`` to ``stop`` in at most ``parts`` read tasks of whole chunks (and how many),
    each streaming blocks of one chunk numbered by input row. Each task reads the file from the top to its first
    row (the formats have no row index), so a few tasks are cheap next to labeling, and several are needed: the
    actor pool takes one task's output as one input, so a single read task would keep one actor busy."""
    import pyarrow as pa
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    size = bulk_label.CHUNK_ROWS
    chunks = -(-(stop - start) // size)
    per_part = -(-chunks // max(1, min(parts, chunks)))
    bounds = [(first, min(stop, first + per_part * size)) for first in range(start, stop, per_part * size)]

    def blocks(first: int, last: int) -> Iterator[Any]:
        rows = itertools.islice(bulk_label.read_rows(path, text_field, id_field, first), last - first)
        while chunk := list(itertools.islice(rows, size)):
            yield pa.table(
                {
                    "row": list(range(first, first + len(chunk))),
                    "id": [row_id for row_id, _ in chunk],
                    "text": [text for _, text in chunk],
                }
            )
            first += len(chunk)

    class RowsSource(Datasource):
        def get_read_tasks(self, parallelism: int, *args: Any, **kwargs: Any) -> list[Any]:
            return [
                ReadTask(
                    functools.partial(blocks, first, last),
                    BlockMetadata(num_rows=last - first, size_bytes=None, input_files=(str(path),), exec_stats=None),
                )
                for first, last in bounds
            ]

        def estimate_inmemory_data_size(self) -> int:
            return path.stat().st_size

    return RowsSource(), len(bounds)  # type: ignore[no-untyped-call]


def _service_error(exc: BaseException) -> ServiceError | None:
    """The ServiceError a Ray task raised, however Ray wrapped it."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ServiceError) and type(seen).__module__.startswith("service."):
            return seen
        seen = getattr(seen, "cause", None) or seen.__cause__
    return None


def label_on_ray(
    ctx: WorkerContext,
    job: bulk_label.BulkJob,
    counts: dict[str, int],
    progress: Callable[[int], object],
    *,
    rows_in_file: int,
    actors: int,
    address: str | None,
) -> dict[str, int]:
    """The rows of ``job`` after those its output holds (``counts["resumed_from"]``), labeled on a Ray cluster
    (``address``: "auto" joins a running one; None starts a local one for this run) by ``actors`` labeling actors
    of one CPU each, appended to the output in input order; returns ``counts`` completed."""
    import ray

    done = counts["resumed_from"]
    if done >= rows_in_file:
        counts["rows"] = done
        return counts
    source, parts = _datasource(job.path, job.text_field, job.id_field, done, rows_in_file, parts=4 * actors)
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False
        # Reading takes no CPU slot of its own, or the actors would starve it on a small machine.
        dataset = ray.data.read_datasource(source, num_cpus=0, override_num_blocks=parts).map_batches(
            _ChunkLabeler,
            fn_constructor_args=(ctx.settings, job.task_name, job.escalate_to_teacher),
            batch_size=bulk_label.CHUNK_ROWS,
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=1,
        )
        job.out.parent.mkdir(parents=True, exist_ok=True)
        with job.out.open("a", encoding="utf-8") as handle:
            for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                for line, source_name, accepted in zip(batch["line"], batch["source"], batch["accepted"], strict=True):
                    bulk_label.count(counts, source=str(source_name), accepted=bool(accepted))
                    handle.write(line + "\n")
                handle.flush()
                done += len(batch["line"])
                progress(done)
    except Exception as exc:
        error = _service_error(exc)
        if error is None:
            raise
        raise error from None
    finally:
        if started:
            ray.shutdown()
    counts["rows"] = done
    return counts

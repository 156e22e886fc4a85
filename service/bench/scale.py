"""`understudy bench scale`: one batch labeled by 1, 2 and 4 worker processes sharing its chunk jobs, on
PostgreSQL, with a stand-in teacher server that sleeps a fixed time per prompt (so on two cores the teacher, not
the CPU, sets the pace, as a GPU server would). Reports items/s, the speed-up over one worker, and whether every
item was labeled exactly once."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from service.bench.faults import SERVICE_WORKER, Stack, _verify, create_task, post_batch, service_stack
from service.bench.report import write_json
from service.bench.review_load_setup import ADMIN_KEY, scratch_postgres

POLL_S = 0.5


def run_workers(
    workers: int,
    *,
    items: int,
    job_items: int,
    teacher_delay_ms: float,
    embed_ms: float | None,
    pg_admin_url: str,
    work: Path,
    timeout_s: float = 1800,
) -> dict[str, Any]:
    """One run: a fresh database, ``workers`` worker processes, one batch of ``items`` in jobs of ``job_items``;
    the workers embed with the stand-in embedder sleeping ``embed_ms`` per text (None: the real MiniLM)."""
    work.mkdir(parents=True, exist_ok=True)
    env = {"UNDERSTUDY_LABEL_JOB_ITEMS": str(job_items)}
    worker_args: Sequence[str] = SERVICE_WORKER
    if embed_ms is not None:
        worker_args = ("-m", "service.bench.scale_worker", "--embed-ms", str(embed_ms))
    with (
        scratch_postgres(pg_admin_url) as database_url,
        service_stack(
            database_url,
            work,
            workers=workers,
            teacher_delay_ms=teacher_delay_ms,
            extra_env=env,
            worker_args=worker_args,
        ) as stack,
    ):
        create_task(stack)
        # Warm-up: a batch of one job per worker, so every worker has loaded its models (on its first job) before
        # the clock starts.
        _label(stack, post_batch(stack, workers * job_items, prefix="warm"), timeout_s)
        started = time.monotonic()
        batch = post_batch(stack, items)
        done = _label(stack, batch, timeout_s)
        seconds = time.monotonic() - started
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        jobs = [httpx.get(url, headers=headers, timeout=30).json() for url in batch["job_urls"]]
        figures = _verify(database_url, items + workers * job_items)
    return {
        "workers": workers,
        "items": items,
        "jobs": len(jobs),
        "jobs_done": sum(job["state"] == "done" for job in jobs),
        "completed": done,
        "seconds": round(seconds, 1),
        "items_per_s": round(items / seconds, 2),
        **figures,
    }


def _label(stack: Stack, batch: dict[str, Any], timeout_s: float) -> bool:
    """Wait until the batch is done (True) or ``timeout_s`` has passed (False)."""
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if httpx.get(batch["url"], headers=headers, timeout=30).json()["done"]:
            return True
        time.sleep(POLL_S)
    return False


def scale_table(runs: Sequence[dict[str, Any]]) -> str:
    base = runs[0]["items_per_s"] if runs else 0.0
    lines = [
        "| workers | items | chunk jobs | seconds | items/s | speed-up | lost | labeled twice |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        lines.append(
            f"| {run['workers']} | {run['items']} | {run['jobs']} | {run['seconds']} | {run['items_per_s']} "
            f"| {run['items_per_s'] / base:.2f}x | {run['items_lost']} | {run['items_labeled_twice']} |"
        )
    return "\n".join(lines)


def run_scale(
    *,
    workers: Sequence[int],
    items: int,
    job_items: int,
    teacher_delay_ms: float,
    embed_ms: float | None,
    pg_admin_url: str,
    work: Path,
    json_out: Path | None = None,
) -> dict[str, Any]:
    runs = [
        run_workers(
            n,
            items=items,
            job_items=job_items,
            teacher_delay_ms=teacher_delay_ms,
            embed_ms=embed_ms,
            pg_admin_url=pg_admin_url,
            work=work / f"workers-{n}",
        )
        for n in workers
    ]
    result = {
        "teacher_delay_ms_per_prompt": teacher_delay_ms,
        "embedder": "MiniLM" if embed_ms is None else f"stand-in, {embed_ms:g} ms a text",
        "job_items": job_items,
        "runs": runs,
        "table": scale_table(runs),
    }
    write_json(result, json_out)
    return result

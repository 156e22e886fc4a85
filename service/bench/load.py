"""`understudy bench load`: client programs posting batches while reviewers work, on PostgreSQL.

The API (uvicorn, one process), workers and the stand-in teacher server run as in `bench faults`. For
``duration_s``, ``clients`` clients (a key each) each POST a batch of ``batch_items`` items, read its status back,
pause ``client_pause_s`` and post again; ``reviewers`` reviewers (a key each, assigned to the task) lease the next
item, think for 0.5 to 1.5 s, and resolve it. Every request's latency is kept by route; any answer of 5xx, or a
connection that fails, is an error. Peak resident memory (VmHWM) of the API and of each worker is read from /proc.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from service.bench.faults import Stack, service_stack
from service.bench.report import write_json
from service.bench.review_load_setup import ADMIN_KEY, scratch_postgres
from service.datasets import load_builtin

TASK = {
    "name": "load",
    "labels": [{"name": "ham", "description": "personal"}, {"name": "spam", "description": "advertising"}],
    "instructions": "Classify the SMS message.",
    "epsilon": 0.1,
}


class Recorder:
    def __init__(self) -> None:
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.statuses: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))

    async def call(self, client: httpx.AsyncClient, route: str, method: str, path: str, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            response = await client.request(method, path, **kwargs)
        except httpx.HTTPError:
            self.errors[route] += 1
            return None
        self.latencies[route].append(time.perf_counter() - started)
        self.statuses[route][response.status_code] += 1
        if response.status_code >= 500:
            self.errors[route] += 1
        return response


async def _client(
    url: str, key: str, number: int, texts: list[str], stop_at: float, pause_s: float, rec: Recorder, items: int
) -> int:
    posted = 0
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as client:
        while time.perf_counter() < stop_at:
            body = {
                "items": [
                    {"id": f"c{number}-{posted}-{i}", "text": texts[(posted * items + i) % len(texts)]}
                    for i in range(items)
                ]
            }
            response = await rec.call(
                client, "POST /v1/tasks/{task}/batches", "POST", "/v1/tasks/load/batches", json=body
            )
            if response is not None and response.status_code == 202:
                posted += 1
                await rec.call(client, "GET /v1/tasks/{task}/batches/{id}", "GET", response.json()["url"])
            await asyncio.sleep(pause_s)
    return posted


async def _reviewer(url: str, key: str, stop_at: float, rec: Recorder, rng: random.Random) -> int:
    answered = 0
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
        while time.perf_counter() < stop_at:
            leased = await rec.call(client, "POST /v1/tasks/{task}/review/next", "POST", "/v1/tasks/load/review/next")
            if leased is None or leased.status_code != 200:
                await asyncio.sleep(1.0)
                continue
            await asyncio.sleep(rng.uniform(0.5, 1.5))
            item = leased.json()
            resolved = await rec.call(
                client,
                "POST /v1/tasks/{task}/review/{item}/resolve",
                "POST",
                f"/v1/tasks/load/review/{item['item_id']}/resolve",
                json={"label": "spam" if "free" in item["text"].lower() else "ham"},
            )
            answered += resolved is not None and resolved.status_code == 200
    return answered


def _peak_rss_mib(pid: int) -> float | None:
    """The process's peak resident memory (VmHWM), in MiB; None once it has exited."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _watch_memory(stack: Stack, stop: threading.Event, peaks: dict[str, float]) -> None:
    while not stop.is_set():
        named = {"api": stack.api.pid, **{f"worker{i}": p.pid for i, p in enumerate(stack.workers)}}
        for name, pid in named.items():
            peak = _peak_rss_mib(pid)
            if peak is not None:
                peaks[name] = max(peaks.get(name, 0.0), peak)
        stop.wait(1.0)


def _setup(stack: Stack, clients: int, reviewers: int) -> tuple[list[str], list[str]]:
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=stack.url, headers=admin, timeout=60) as http:
        http.post("/v1/tasks", json=TASK).raise_for_status()
        client_keys = [
            http.post("/v1/keys", json={"name": f"client{i}", "role": "client"}).json()["key"] for i in range(clients)
        ]
        reviewer_keys = []
        for i in range(reviewers):
            made = http.post("/v1/keys", json={"name": f"reviewer{i}", "role": "reviewer"})
            made.raise_for_status()
            reviewer_keys.append(made.json()["key"])
            assigned = http.put(f"/v1/tasks/load/reviewers/reviewer{i}")
            if assigned.status_code != 200:
                raise RuntimeError(f"assigning reviewer{i}: {assigned.status_code} {assigned.text}")
    return client_keys, reviewer_keys


async def _drive(
    stack: Stack,
    client_keys: list[str],
    reviewer_keys: list[str],
    *,
    duration_s: float,
    pause_s: float,
    items: int,
    rec: Recorder,
) -> tuple[list[int], list[int]]:
    texts = [text for text, _ in load_builtin("sms_spam")]
    stop_at = time.perf_counter() + duration_s
    rng = random.Random(0)
    posting = [_client(stack.url, key, i, texts, stop_at, pause_s, rec, items) for i, key in enumerate(client_keys)]
    reviewing = [_reviewer(stack.url, key, stop_at, rec, random.Random(rng.random())) for key in reviewer_keys]
    done = await asyncio.gather(*posting, *reviewing)
    return list(done[: len(posting)]), list(done[len(posting) :])


def run_load(
    *,
    clients: int,
    reviewers: int,
    duration_s: float,
    batch_items: int,
    client_pause_s: float,
    workers: int,
    pg_admin_url: str,
    work: Path,
    json_out: Path | None,
) -> dict[str, Any]:
    rec = Recorder()
    peaks: dict[str, float] = {}
    with scratch_postgres(pg_admin_url) as database_url, service_stack(database_url, work, workers=workers) as stack:
        client_keys, reviewer_keys = _setup(stack, clients, reviewers)
        stop = threading.Event()
        watcher = threading.Thread(target=_watch_memory, args=(stack, stop, peaks), daemon=True)
        watcher.start()
        posted, answered = asyncio.run(
            _drive(
                stack,
                client_keys,
                reviewer_keys,
                duration_s=duration_s,
                pause_s=client_pause_s,
                items=batch_items,
                rec=rec,
            )
        )
        stop.set()
        watcher.join(timeout=5)
    routes = {
        route: {
            "requests": len(seconds),
            "p50_ms": round(float(np.percentile(seconds, 50)) * 1000, 1),
            "p99_ms": round(float(np.percentile(seconds, 99)) * 1000, 1),
            "errors": rec.errors.get(route, 0),
            "statuses": {str(code): n for code, n in sorted(rec.statuses[route].items())},
        }
        for route, seconds in sorted(rec.latencies.items())
    }
    report: dict[str, Any] = {
        "store": "postgresql",
        "clients": clients,
        "reviewers": reviewers,
        "duration_s": duration_s,
        "batch_items": batch_items,
        "client_pause_s": client_pause_s,
        "workers": workers,
        "batches_posted": sum(posted),
        "items_posted": sum(posted) * batch_items,
        "reviews_answered": sum(answered),
        "errors": sum(rec.errors.values()),
        "routes": routes,
        "peak_rss_mib": {name: round(value, 1) for name, value in sorted(peaks.items())},
    }
    report["table"] = load_table(report)
    write_json(report, json_out)
    return report


def load_table(report: dict[str, Any]) -> str:
    lines = [
        f"{report['clients']} clients posting {report['batch_items']}-item batches and {report['reviewers']} reviewers "
        f"for {report['duration_s']:.0f} s on PostgreSQL ({report['workers']} workers): "
        f"{report['batches_posted']} batches ({report['items_posted']:,} items), {report['reviews_answered']} reviews, "
        f"{report['errors']} errors; peak RSS "
        + ", ".join(f"{name} {mib:.0f} MiB" for name, mib in report["peak_rss_mib"].items()),
        "",
        "| route | requests | p50 ms | p99 ms | errors |",
        "|---|---|---|---|---|",
    ]
    for route, row in report["routes"].items():
        lines.append(f"| {route} | {row['requests']} | {row['p50_ms']} | {row['p99_ms']} | {row['errors']} |")
    return "\n".join(lines)

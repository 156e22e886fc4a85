"""`understudy bench review_load`: concurrent reviewers doing next + resolve against a running server.

The server is `uvicorn service.main:served_app --factory` in a subprocess (real HTTP on localhost, no worker). The
database is seeded directly with a task, `items` items waiting for review (with a prediction and a decision each,
as the worker would leave them) and one assigned reviewer key per simulated reviewer. Each reviewer is an asyncio
task with its own keep-alive connection doing POST next then POST resolve (or resolve?next=true, one request per
item), with or without a pause between items. A round trip is one item answered.

A pause is drawn per item, uniformly from half to one and a half times `think_s` (seeded), and each reviewer
starts after a random share of one pause: reviewers who all wait exactly the same time stay in lockstep and hit
the server in bursts of 20 at once, which no team of people does (load tools jitter their wait for the same
reason, as Locust's `between`).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from service.bench.review_load_setup import LABELS, running_server, scratch_postgres, seed


async def _reviewer(
    url: str,
    task: str,
    key: str,
    stop_at: float,
    think_s: float,
    combined: bool,
    out: dict[str, list[float]],
    rng: random.Random,
) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    if think_s:
        await asyncio.sleep(rng.uniform(0, think_s))
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        first = True
        item: dict[str, Any] | None = None
        while time.perf_counter() < stop_at:
            start = time.perf_counter()
            if item is None:
                leased = await client.post(f"/v1/tasks/{task}/review/next")
                leased.raise_for_status()
                item = leased.json() if leased.status_code == 200 else None
            middle = time.perf_counter()
            if item is None:
                return
            label = LABELS[item["item_id"] % 2]
            resolved = await client.post(
                f"/v1/tasks/{task}/review/{item['item_id']}/resolve", params={"next": combined}, json={"label": label}
            )
            resolved.raise_for_status()
            item = resolved.json()["next_item"] if combined else None
            end = time.perf_counter()
            if first:  # the first round trip opens the connection (and, combined, makes two calls)
                out["untimed"].append(end - start)
            else:
                out["round_trip"].append(end - start)
                out["next"].append(middle - start)
                out["resolve"].append(end - middle)
                out["finished"].append(end)
            first = False
            if think_s:
                await asyncio.sleep(rng.uniform(0.5 * think_s, 1.5 * think_s))


async def _load(
    url: str, task: str, reviewer_keys: Sequence[str], duration_s: float, think_s: float, combined: bool
) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"round_trip": [], "next": [], "resolve": [], "finished": [], "untimed": []}
    stop_at = time.perf_counter() + duration_s
    await asyncio.gather(
        *(
            _reviewer(url, task, key, stop_at, think_s, combined, out, random.Random(index))
            for index, key in enumerate(reviewer_keys)
        )
    )
    return out


def _ms(values: Sequence[float], q: float) -> float:
    return round(float(np.quantile(np.asarray(values), q)) * 1000, 2)


def run_review_load(
    *,
    database_url: str,
    data_dir: Path,
    store: str,
    reviewers: int = 20,
    items: int = 3000,
    duration_s: float = 20.0,
    think_s: float = 0.0,
    server_workers: int = 1,
    combined: bool = False,
) -> dict[str, Any]:
    """Seed, start the server, run `reviewers` concurrent reviewers for `duration_s` (or until the queue is empty)
    and return latency quantiles in ms per round trip and per call, and resolved items per second. `think_s` is
    each reviewer's mean pause between items: 0 is a closed loop at full speed (the server's capacity); a human's
    reading time gives the latency reviewers feel when 20 of them work at once. `combined` resolves with
    ?next=true, so one request answers an item and leases the next (what the review page does); a round trip is
    then that one request."""
    task, reviewer_keys = seed(database_url, items=items, reviewers=reviewers)
    load_before = os.getloadavg()[0]
    with running_server(database_url, data_dir, workers=server_workers) as url:
        started = time.perf_counter()
        out = asyncio.run(_load(url, task, reviewer_keys, duration_s, think_s, combined))
    if not out["round_trip"]:
        raise RuntimeError("no round trip completed")
    elapsed = max(out["finished"]) - started
    result: dict[str, Any] = {
        "store": store,
        "reviewers": reviewers,
        "think_s": think_s,
        "server_workers": server_workers,
        "mode": "resolve?next=true" if combined else "next + resolve",
        "seeded_items": items,
        "round_trips": len(out["round_trip"]),
        "items_answered": len(out["round_trip"]) + len(out["untimed"]),
        "seconds": round(elapsed, 2),
        "items_per_s": round(len(out["round_trip"]) / elapsed, 1),
        "cpu_count": os.cpu_count(),
        "load_average_1m_before": round(load_before, 2),
        "load_average_1m_after": round(os.getloadavg()[0], 2),
    }
    for name in ("round_trip",) if combined else ("round_trip", "next", "resolve"):
        result[name] = {f"p{int(q * 100)}_ms": _ms(out[name], q) for q in (0.5, 0.9, 0.99)}
    result["target_p99_ms"] = 50.0
    result["meets_target"] = result["round_trip"]["p99_ms"] < 50.0
    return result


def review_load_table(results: Sequence[dict[str, Any]]) -> str:
    """A markdown table: one row per run; latencies are per round trip (one item answered)."""
    lines = [
        "| store | mode | reviewers | mean think s | workers | round trips | items/s | p50 ms | p90 ms | p99 ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        trip = r["round_trip"]
        cells = [r["store"], r["mode"], r["reviewers"], r["think_s"], r["server_workers"], r["round_trips"]]
        cells += [r["items_per_s"], trip["p50_ms"], trip["p90_ms"], trip["p99_ms"]]
        lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    return "\n".join(lines)


def write_results(results: Sequence[dict[str, Any]], out_dir: Path) -> Path:
    """bench/results/review_load.json (every figure) and review_load.md (the table)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "review_load.json"
    path.write_text(json.dumps({"results": list(results), "table": review_load_table(results)}, indent=2) + "\n")
    (out_dir / "review_load.md").write_text(review_load_table(results) + "\n")
    return path


RUNS: tuple[dict[str, Any], ...] = (
    {"think_s": 0.0, "combined": False},
    {"think_s": 0.0, "combined": True},
    {"think_s": 1.0, "combined": False},
    {"think_s": 1.0, "combined": True},
    {"think_s": 1.0, "combined": False, "server_workers": 2},
    {"think_s": 1.0, "combined": True, "server_workers": 2},
)
"""Closed loops (the server's capacity) and reviewers pausing 1 s per item on average, each with two calls per
item and with ?next=true (what the review page sends); the paused runs also with two uvicorn workers, one per
core."""


def run_suite(
    *, work_dir: Path, postgres_admin_url: str | None, reviewers: int = 20, duration_s: float = 30.0
) -> list[dict[str, Any]]:
    """Every run of RUNS on a fresh SQLite file and, given `postgres_admin_url`, on a scratch PostgreSQL database."""
    results = []
    for index, run in enumerate(RUNS):
        url = f"sqlite:///{(work_dir / f'review_load_{index}.db').resolve()}"
        results.append(
            run_review_load(
                database_url=url, data_dir=work_dir, store="sqlite", reviewers=reviewers, duration_s=duration_s, **run
            )
        )
        if postgres_admin_url:
            with scratch_postgres(postgres_admin_url) as pg_url:
                results.append(
                    run_review_load(
                        database_url=pg_url,
                        data_dir=work_dir,
                        store="postgresql",
                        reviewers=reviewers,
                        duration_s=duration_s,
                        **run,
                    )
                )
    return results

"""`understudy bench dashboard`: how fast the lead's dashboard answers on a large task. A task of N items with M
human reviews is seeded in bulk into a scratch SQLite database (store/dashboard_seed.py); the app runs in this
process and a lead's session asks for the page, each plot and each data table, several times over, with the
figures computed afresh (as after any change to the task) and with nothing changed since the last request (the
figures are kept per task state). Reported: the median and worst time of each, after one warm-up request."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from service import db
from service.api.routes.dashboard import CHARTS
from service.bench.report import write_json
from service.config import Settings
from service.dashboard import TABLES
from service.jobs import worker
from service.jobs.context import WorkerContext
from service.main import create_app, settle_heap
from service.store.dashboard_seed import seed_labeled_task

TARGET_MS = 300.0


def run_dashboard_bench(*, items: int, reviews: int, repeats: int, work: Path, json_out: Path | None) -> dict[str, Any]:
    settings = Settings(data_dir=work / "data", database_url=f"sqlite:///{work / 'dashboard.db'}")
    sessions = db.open(settings)
    started = time.perf_counter()
    with db.transaction(sessions) as session:
        task, lead_key = seed_labeled_task(session, items=items, reviews=reviews)
    seeded_s = time.perf_counter() - started
    db.engine_of(sessions).dispose()
    app = create_app(settings)
    settle_heap()  # as `understudy serve` does
    timings: dict[str, list[float]] = {}
    with TestClient(app) as client:
        assert client.post("/review/login", data={"key": lead_key}, follow_redirects=False).status_code == 303
        paths = {
            "page": f"/ui/tasks/{task}",
            **{f"chart {name}": f"/ui/tasks/{task}/charts/{name}.svg" for name in CHARTS},
            **{f"data {name}": f"/ui/tasks/{task}/data/{name}.json" for name in TABLES},
        }
        for name, path in paths.items():
            assert client.get(path).status_code == 200, f"{name}: {path}"  # warm-up: imports, the first plot
            for fresh in (True, False):
                for _ in range(repeats):
                    if fresh:  # as after any change to the task: every figure computed again
                        app.state.dashboard_figures.clear()
                    before = time.perf_counter()
                    response = client.get(path)
                    timings.setdefault(f"{name}|{fresh}", []).append((time.perf_counter() - before) * 1000)
                    assert response.status_code == 200
        whole = []
        for _ in range(repeats):  # what a browser asks for after a change: the page, then its three plots
            app.state.dashboard_figures.clear()
            before = time.perf_counter()
            for path in [paths["page"], *(paths[f"chart {name}"] for name in CHARTS)]:
                assert client.get(path).status_code == 200
            whole.append((time.perf_counter() - before) * 1000)
        consistency = _time_consistency(client, settings, task, lead_key)
    app.state.engine.dispose()
    result: dict[str, Any] = {
        "items": items,
        "reviews": reviews,
        "store": "sqlite",
        "repeats": repeats,
        "seeded_s": round(seeded_s, 1),
        "consistency": consistency,
        "page_with_plots_ms": {"median_ms": round(statistics.median(whole), 1), "max_ms": round(max(whole), 1)},
        "target_ms": TARGET_MS,
        "requests": {
            name: {
                state: {
                    "median_ms": round(statistics.median(timings[f"{name}|{fresh}"]), 1),
                    "max_ms": round(max(timings[f"{name}|{fresh}"]), 1),
                }
                for state, fresh in (("changed", True), ("unchanged", False))
            }
            for name in paths
        },
    }
    result["table"] = dashboard_table(result)
    write_json(result, json_out)
    return result


def _time_consistency(client: TestClient, settings: Settings, task: str, lead_key: str) -> dict[str, Any]:
    """The first consistency check (every labeled item against every other: a job, run here by a worker) and one
    after nothing changed (in the request)."""
    headers = {"Authorization": f"Bearer {lead_key}"}
    started = time.perf_counter()
    queued = client.post(f"/v1/tasks/{task}/consistency", headers=headers)
    assert queued.status_code == 202, queued.text
    ctx = WorkerContext.from_settings(settings)
    assert worker.run_once(ctx)
    job = client.get(queued.json()["job_url"], headers=headers).json()
    assert job["state"] == "done", job
    first = {**job["result"], "state": "job", "request_to_result_s": round(time.perf_counter() - started, 3)}
    db.engine_of(ctx.sessions).dispose()
    again = client.post(f"/v1/tasks/{task}/consistency", headers=headers)
    assert again.status_code == 200, again.text
    return {"first": first, "incremental": again.json()}


def dashboard_table(result: dict[str, Any]) -> str:
    lines = [
        f"Dashboard of a task with {result['items']:,} items and {result['reviews']:,} reviews ({result['store']}, "
        f"median and worst of {result['repeats']}; 'changed': the task changed since the last request, so every "
        "figure is computed again; 'unchanged': nothing happened since)",
        "| request | changed: median ms | worst ms | unchanged: median ms | worst ms |",
        "|---|---|---|---|---|",
    ]
    for name, row in result["requests"].items():
        changed, unchanged = row["changed"], row["unchanged"]
        lines.append(
            f"| {name} | {changed['median_ms']:.0f} | {changed['max_ms']:.0f} | "
            f"{unchanged['median_ms']:.0f} | {unchanged['max_ms']:.0f} |"
        )
    first, again = result["consistency"]["first"], result["consistency"]["incremental"]
    whole = result["page_with_plots_ms"]
    lines += [
        "",
        f"The page and its three plots one after the other, after a change (they share one pass over the reviews): "
        f"{whole['median_ms']:.0f} ms (worst {whole['max_ms']:.0f}).",
        "",
        f"Consistency check (cosine >= {first['min_cosine']}): the first compares {first['checked']:,} labeled items "
        f"with {first['compared_with']:,} as a background job in {first['seconds']:.1f} s (the request that queues "
        f"it answers at once) and finds {first['found']:,} pairs with different labels; the next, with nothing "
        f"labeled since, runs in the request: {again['checked']} compared in {again['seconds']:.2f} s.",
    ]
    return "\n".join(lines)

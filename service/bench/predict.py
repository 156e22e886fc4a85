"""`understudy bench predict`: a promoted student served and taken home.

- Online: `POST /v1/tasks/{task}/predict` with one text a request from ``clients`` concurrent clients against
  `uvicorn` (one worker, a subprocess, the task's own database): p50/p90/p99 latency and requests per second,
  after a warm-up that loads the student.
- Exported: the student's items/s in the service (LoraStudent at the configured encoder precision), its `onnx`
  export in onnxruntime (batches of 64; the float32 model and the int8 one) and its `hf` export in a transformers
  pipeline (one text at a time, the exact mode, and batches of 64), on the same texts.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from service import db
from service.bench.report import write_json
from service.bench.review_load_setup import running_server
from service.config import Settings
from service.store import keys, tasks
from service.student_export import FORMATS, student_row, write_folder

BATCH = 64


async def _client(url: str, task: str, key: str, texts: Sequence[str], stop_at: float, out: list[float]) -> None:
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
        index = 0
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            response = await http.post(f"/v1/tasks/{task}/predict", json={"texts": [texts[index % len(texts)]]})
            response.raise_for_status()
            out.append(time.perf_counter() - started)
            index += 1


async def _load(url: str, task: str, key: str, texts: Sequence[str], clients: int, duration_s: float) -> list[float]:
    out: list[float] = []
    stop_at = time.perf_counter() + duration_s
    await asyncio.gather(*(_client(url, task, key, texts[i::clients], stop_at, out) for i in range(clients)))
    return out


WRK_SCRIPT = """
local bodies = {}
for line in io.lines("%(bodies)s") do bodies[#bodies + 1] = line end
wrk.method = "POST"
wrk.path = "%(path)s"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(key)s"
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, bodies[(n %% #bodies) + 1])
end
"""
UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _wrk(url: str, task: str, key: str, texts: Sequence[str], clients: int, duration_s: float) -> dict[str, Any]:
    """The same load from wrk (C, one connection a client): the Python clients above spend CPU of their own on
    the same cores, which wrk barely does. Latency percentiles as wrk reports them (--latency)."""
    with tempfile.TemporaryDirectory() as tmp:
        bodies, script = Path(tmp) / "bodies.jsonl", Path(tmp) / "predict.lua"
        bodies.write_text("".join(json.dumps({"texts": [text]}) + "\n" for text in texts))
        script.write_text(WRK_SCRIPT % {"bodies": bodies, "path": f"/v1/tasks/{task}/predict", "key": key})
        load = ["-t", "2", "-c", str(clients), "-d", f"{duration_s:.0f}s", "--timeout", "60s", "--latency"]
        command = ["wrk", *load, "-s", str(script), url]
        report = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in report or "Socket errors" in report:
        raise RuntimeError(f"wrk saw failed requests:\n{report}")
    percentiles = {
        f"p{match[1]}_ms": round(float(match[2]) * UNITS_MS[match[3]], 2)
        for match in re.finditer(r"^\s+(50|90|99)\.?0*%\s+([\d.]+)(us|ms|s)\s*$", report, re.M)
    }
    rate = re.search(r"Requests/sec:\s+([\d.]+)", report)
    if rate is None or len(percentiles) != 3:
        raise RuntimeError(f"unreadable wrk report:\n{report}")
    return {"requests_per_s": round(float(rate[1]), 1), **percentiles}


def online(settings: Settings, task: str, texts: Sequence[str], *, clients: int, duration_s: float) -> dict[str, Any]:
    """Latency and throughput under ``clients`` concurrent clients, each sending one text a request as soon as
    its last one was answered: from Python (httpx, asyncio) and, where it is installed, from wrk."""
    sessions = db.open(settings)
    with db.transaction(sessions) as session:
        tasks.get_task(session, task)
        _, key = keys.create_key(session, name=f"bench-predict-{time.time_ns()}", role="client")
    # One key makes every request here: the per-key rate limit (200/s by default) would measure itself.
    no_limit = {"UNDERSTUDY_RATE_LIMIT_PER_S": "0"}
    with running_server(settings.resolved_database_url, settings.data_dir, admin_key=None, extra_env=no_limit) as url:
        warm = httpx.post(
            f"{url}/v1/tasks/{task}/predict",
            json={"texts": list(texts[:8])},
            headers={"Authorization": f"Bearer {key}"},
            timeout=300,
        )
        warm.raise_for_status()
        latencies = asyncio.run(_load(url, task, key, texts, clients, duration_s))
        from_wrk = _wrk(url, task, key, texts, clients, duration_s) if shutil.which("wrk") else None
    seconds = np.asarray(latencies)
    return {
        "clients": clients,
        "duration_s": duration_s,
        "requests": int(seconds.size),
        "requests_per_s": round(seconds.size / duration_s, 1),
        **{f"p{q}_ms": round(float(np.percentile(seconds, q)) * 1000, 2) for q in (50, 90, 99)},
        "wrk": from_wrk,
        "student": warm.json()["student"],
    }


def _rate(run: Any, texts: Sequence[str]) -> float:
    run(texts[:BATCH])  # warm-up
    started = time.perf_counter()
    run(texts)
    return round(len(texts) / (time.perf_counter() - started), 1)


def exported(settings: Settings, task: str, texts: Sequence[str]) -> tuple[dict[str, Any], dict[str, float]]:
    """Items/s of the student in the service and of its two exports; returns them with the largest gap between
    an export's probabilities and the service's (float32) on these texts."""
    from service.backends.factory import load_student
    from service.backends.minilm import resolve_precision
    from service.backends.student_export import ONNX_INT8_FILE, exported_scorer
    from service.backends.student_lora import LoraStudent

    with db.transaction(db.open(settings)) as session:
        task_row = tasks.get_task(session, task)
        row = student_row(session, task_row, None)
        path = Path(row.path)
        with tempfile.TemporaryDirectory() as tmp:
            for fmt in FORMATS:
                write_folder(session, task_row, row, fmt, Path(tmp) / fmt)
            service_student = load_student(settings, path)
            exact = LoraStudent.load(path, precision="float32").predict_proba(texts)
            onnx_probs = exported_scorer(Path(tmp) / "onnx", "onnx", batch_size=BATCH)
            onnx_int8 = exported_scorer(Path(tmp) / "onnx", "onnx", batch_size=BATCH, onnx_file=ONNX_INT8_FILE)
            hf_one = exported_scorer(Path(tmp) / "hf", "hf", batch_size=1)
            hf_batch = exported_scorer(Path(tmp) / "hf", "hf", batch_size=BATCH)
            speeds = {
                "service_student": _rate(service_student.predict_proba, texts),
                "onnx_batch_64": _rate(onnx_probs, texts),
                "onnx_int8_batch_64": _rate(onnx_int8, texts),
                "hf_pipeline_one_at_a_time": _rate(hf_one, texts),
                "hf_pipeline_batch_64": _rate(hf_batch, texts),
            }
            gaps = {
                "onnx_batch_64": float(np.abs(onnx_probs(texts) - exact).max()),
                "onnx_int8_batch_64": float(np.abs(onnx_int8(texts) - exact).max()),
                "hf_pipeline_one_at_a_time": float(np.abs(hf_one(texts) - exact).max()),
                "hf_pipeline_batch_64": float(np.abs(hf_batch(texts) - exact).max()),
            }
    return {"items_per_s": speeds, "precision": resolve_precision(settings.encoder_precision)}, gaps


def predict_table(result: dict[str, Any]) -> str:
    online_run, speeds, gaps = result["online"], result["exported"]["items_per_s"], result["max_prob_gap"]
    lines = [
        f"Online predict, {online_run['clients']} clients, one text a request, {online_run['duration_s']:.0f} s: "
        f"p50 {online_run['p50_ms']} ms, p90 {online_run['p90_ms']} ms, p99 {online_run['p99_ms']} ms, "
        f"{online_run['requests_per_s']} requests/s (Python clients)",
    ]
    if (wrk := online_run.get("wrk")) is not None:
        lines[0] += (
            f"; from wrk: p50 {wrk['p50_ms']} ms, p90 {wrk['p90_ms']} ms, p99 {wrk['p99_ms']} ms, "
            f"{wrk['requests_per_s']} requests/s"
        )
    lines += [
        "",
        "| student | items/s | largest probability gap to the service (float32) |",
        "|---|---|---|",
    ]
    for name, speed in speeds.items():
        gap = gaps.get(name)
        lines.append(f"| {name} | {speed} | {'–' if gap is None else f'{gap:.1e}'} |")
    return "\n".join(lines)


def run_predict_bench(
    settings: Settings, *, task: str, texts: Sequence[str], clients: int, duration_s: float, json_out: Path | None
) -> dict[str, Any]:
    speeds, gaps = exported(settings, task, texts)
    result: dict[str, Any] = {
        "task": task,
        "texts": len(texts),
        "online": online(settings, task, texts, clients=clients, duration_s=duration_s),
        "exported": speeds,
        "max_prob_gap": gaps,
        "target_p99_ms": 50.0,
    }
    result["table"] = predict_table(result)
    write_json(result, json_out)
    return result

"""`understudy bench faults`: a batch labeled through faults, by the real API and workers in their own processes.

Each scenario starts a fresh database, the API (uvicorn, no embedded worker), workers (`understudy worker`) and a
stand-in teacher server (bench/fake_vllm.py: the `vllm_server` protocol, answers after a fixed delay), posts one
batch, injects its fault once a share of the batch is labeled, and waits for the batch to finish:

- ``worker_kill``: SIGKILL the worker holding the batch's job; another claims it when the lease ends.
- ``postgres_restart``: stop PostgreSQL for a few seconds (`pg_ctlcluster`), then start it again.
- ``teacher_outage``: kill the teacher server, start it again 30 s later.
- ``sqlite_full``: the SQLite database on a small tmpfs that fills up; space is freed once a worker's write has
  failed (at least 5 s, at most 2 minutes).

Throughout, a client polls the batch; every answer's status is counted (the API must answer 503, not 500, while
the database is away). At the end the database is read directly: items lost (never labeled), items labeled twice
(more than one prediction), and whether the batch completed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import make_url

from service import db
from service.bench.report import write_json
from service.bench.review_load_setup import ADMIN_KEY, _free_port, running_server, scratch_postgres
from service.datasets import load_builtin
from service.store import items as store_items
from service.store import jobs

SCENARIOS = ("worker_kill", "postgres_restart", "teacher_outage", "sqlite_full")
FAULT_AT = 0.2
"""Share of the batch labeled before the fault is injected."""
JOB_LEASE_S = 10.0
TEACHER_DOWN_S = 30.0
DATABASE_DOWN_S = 5.0
DISK_FULL_S = 5.0
DISK_FULL_MAX_S = 120.0


@dataclass
class Stack:
    """The processes of one run (API, workers, stand-in teacher) and what a polling client saw."""

    url: str
    database_url: str
    env: dict[str, str]
    api: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]]
    teacher: list[subprocess.Popen[bytes]]
    teacher_port: int
    statuses: Counter[int] = field(default_factory=Counter)
    during_fault: Counter[int] = field(default_factory=Counter)
    in_fault: bool = False


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, *args], env=env, stdout=out, stderr=subprocess.STDOUT)


def _teacher(
    stack_env: dict[str, str], port: int, model: str, log: Path, *, delay_ms: float = 5.0
) -> subprocess.Popen[bytes]:
    process = _spawn(
        ["-m", "service.bench.fake_vllm", "--port", str(port), "--model", model, "--delay-ms", str(delay_ms)],
        stack_env,
        log,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).status_code == 200:
                return process
        time.sleep(0.2)
    raise RuntimeError("the stand-in teacher server did not start")


SERVICE_WORKER = ("-m", "service.cli", "worker")
"""The worker processes' arguments to python: the service's own worker."""


@contextlib.contextmanager
def service_stack(
    database_url: str,
    work: Path,
    *,
    workers: int,
    teacher_delay_ms: float = 5.0,
    extra_env: Mapping[str, str] | None = None,
    worker_args: Sequence[str] = SERVICE_WORKER,
) -> Iterator[Stack]:
    """The API (uvicorn, no embedded worker), ``workers`` workers (``python worker_args``) and the stand-in
    teacher server (sleeping ``teacher_delay_ms`` per prompt), on a database, until the block ends; ``extra_env``
    adds settings."""
    from service.backends.factory import teacher_model_dir
    from service.config import Settings

    model = str(teacher_model_dir(Settings()))
    port = _free_port()
    env = {
        **os.environ,
        "UNDERSTUDY_DATABASE_URL": database_url,
        "UNDERSTUDY_DATA_DIR": str(work),
        "UNDERSTUDY_TEACHER__BACKEND": "vllm_server",
        "UNDERSTUDY_TEACHER__VLLM_URL": f"http://127.0.0.1:{port}",
        "UNDERSTUDY_TEACHER__MODEL": model,
        "UNDERSTUDY_JOB_LEASE_S": str(JOB_LEASE_S),
        "UNDERSTUDY_RATE_LIMIT_PER_S": "0",
        "HF_HUB_OFFLINE": "1",
        **(extra_env or {}),
    }
    teacher = [_teacher(env, port, model, work / "teacher.log", delay_ms=teacher_delay_ms)]
    running: list[subprocess.Popen[bytes]] = []
    api: list[subprocess.Popen[bytes]] = []
    try:
        with running_server(database_url, work, extra_env=env, started=api) as url:
            running += [_spawn(list(worker_args), env, work / f"worker{i}.log") for i in range(workers)]
            yield Stack(url, database_url, env, api[0], running, teacher, port)
    finally:
        for process in running + teacher:
            if process.poll() is None:
                process.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=20)
            if process.poll() is None:
                process.kill()


def _post_batch(stack: Stack, items: int) -> dict[str, Any]:
    create_task(stack)
    return post_batch(stack, items)


def create_task(stack: Stack) -> None:
    """The task the benchmarks label: SMS Spam's labels, with no reviewer to wait for."""
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    task = {
        "name": "faults",
        "labels": [{"name": "ham", "description": "personal"}, {"name": "spam", "description": "advertising"}],
        "instructions": "Classify the SMS message.",
        "epsilon": 0.1,
        "review_budget": 1,  # no reviewer here: cold start must not wait for one
    }
    httpx.post(f"{stack.url}/v1/tasks", json=task, headers=admin, timeout=30).raise_for_status()


def post_batch(stack: Stack, items: int, *, prefix: str = "f") -> dict[str, Any]:
    """A batch of ``items`` SMS Spam texts (repeated, numbered) for the task ``create_task`` made."""
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    texts = [text for text, _ in load_builtin("sms_spam")]
    body = {"items": [{"id": f"{prefix}{i}", "text": f"{texts[i % len(texts)]} #{i}"} for i in range(items)]}
    response = httpx.post(f"{stack.url}/v1/tasks/faults/batches", json=body, headers=admin, timeout=120)
    response.raise_for_status()
    batch: dict[str, Any] = response.json()
    return batch


def _poll(stack: Stack, batch_url: str, stop: threading.Event, progress: dict[str, float]) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(timeout=10) as client:
        while not stop.is_set():
            try:
                response = client.get(batch_url, headers=headers)
                code = response.status_code
                if code == 200:
                    progress["share"] = float(response.json()["progress"])
                    progress["done"] = float(response.json()["done"])
            except httpx.HTTPError:
                code = 0  # no answer at all
            stack.statuses[code] += 1
            if stack.in_fault:
                stack.during_fault[code] += 1
            stop.wait(0.2)


def _kill_job_holder(stack: Stack) -> str:
    sessions = db.open_database(stack.database_url)
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            with db.transaction(sessions) as session:
                owner = jobs.running_owner(session, kind="label_batch")
            pid = int(owner.split(":")[1]) if owner else None
            victim = next((p for p in stack.workers if p.pid == pid), None)
            if victim is not None:
                victim.send_signal(signal.SIGKILL)
                victim.wait()
                return f"SIGKILL worker pid {pid}, which held the job"
            time.sleep(0.2)
    finally:
        db.engine_of(sessions).dispose()
    raise RuntimeError("no worker held the batch's job")


def _restart_postgres(stack: Stack) -> str:
    cluster = _pg_cluster()
    stack.in_fault = True
    subprocess.run(["pg_ctlcluster", *cluster, "stop", "-m", "fast"], check=True, capture_output=True)
    time.sleep(DATABASE_DOWN_S)
    subprocess.run(["pg_ctlcluster", *cluster, "start"], check=True, capture_output=True)
    stack.in_fault = False
    return f"PostgreSQL {'/'.join(cluster)} stopped for {DATABASE_DOWN_S:.0f} s, then started"


def _pg_cluster() -> list[str]:
    listed = subprocess.run(["pg_lsclusters", "--no-header"], check=True, capture_output=True, text=True).stdout
    version, name = listed.split()[:2]
    return [version, name]


def _teacher_outage(stack: Stack) -> str:
    stack.in_fault = True
    for process in stack.teacher:
        process.send_signal(signal.SIGKILL)
        process.wait()
    time.sleep(TEACHER_DOWN_S)
    model = stack.env["UNDERSTUDY_TEACHER__MODEL"]
    log = Path(stack.env["UNDERSTUDY_DATA_DIR"]) / "teacher.log"
    stack.teacher.append(_teacher(stack.env, stack.teacher_port, model, log))
    stack.in_fault = False
    return f"teacher server SIGKILLed, started again {TEACHER_DOWN_S:.0f} s later"


def _fill_disk(stack: Stack) -> str:
    filler = Path(str(make_url(stack.database_url).database)).parent / "filler"
    stack.in_fault = True
    with filler.open("wb") as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * (1 << 20))
            out.flush()
    # SQLite may keep writing into WAL pages it already has: the disk stays full until a write has failed.
    logs = Path(stack.env["UNDERSTUDY_DATA_DIR"])
    started = time.monotonic()
    while time.monotonic() - started < DISK_FULL_MAX_S:
        time.sleep(1.0)
        if time.monotonic() - started >= DISK_FULL_S and _worker_retries(logs):
            break
    filler.unlink()
    stack.in_fault = False
    return f"the database's file system filled up; space freed {time.monotonic() - started:.0f} s later"


def _worker_retries(work: Path) -> int:
    """Chunks the workers could not write: waits on the database, and job attempts that failed."""
    logs = [log.read_text(errors="replace") for log in work.glob("worker*.log")]
    return sum(text.count("database unavailable") + text.count("failed on attempt") for text in logs)


def _verify(database_url: str, items: int) -> dict[str, int]:
    sessions = db.open_database(database_url)
    try:
        with db.transaction(sessions) as session:
            counts = store_items.predictions_per_item(session)
            queued = store_items.count_queued(session)
    finally:
        db.engine_of(sessions).dispose()
    stored = sum(counts.values())
    return {
        "items_stored": stored,
        "items_lost": items - stored + int(counts.get(0, 0)),
        "items_labeled_twice": sum(n for k, n in counts.items() if k > 1),
        "items_still_queued": int(queued),
    }


def run_scenario(name: str, *, items: int, pg_admin_url: str, work: Path, timeout_s: float = 900) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    faults: dict[str, Callable[[Stack], str]] = {
        "worker_kill": _kill_job_holder,
        "postgres_restart": _restart_postgres,
        "teacher_outage": _teacher_outage,
        "sqlite_full": _fill_disk,
    }
    with _database(name, pg_admin_url, work) as database_url, service_stack(database_url, work, workers=2) as stack:
        started = time.monotonic()
        batch = _post_batch(stack, items)
        stop, progress = threading.Event(), {"share": 0.0, "done": 0.0}
        poller = threading.Thread(target=_poll, args=(stack, batch["url"], stop, progress), daemon=True)
        poller.start()
        while progress["share"] < FAULT_AT and time.monotonic() - started < timeout_s:
            time.sleep(0.2)
        fault_at = time.monotonic() - started
        what = faults[name](stack)
        while not progress["done"] and time.monotonic() - started < timeout_s:
            time.sleep(0.5)
        seconds = time.monotonic() - started
        stop.set()
        poller.join(timeout=15)
        figures = _verify(database_url, items)
    waits = _worker_retries(work)
    return {
        "scenario": name,
        "fault": what,
        "items": items,
        "fault_at_s": round(fault_at, 1),
        "completed": bool(progress["done"]),
        "seconds": round(seconds, 1),
        **figures,
        "api_statuses": {str(code): n for code, n in sorted(stack.statuses.items())},
        "api_statuses_during_fault": {str(code): n for code, n in sorted(stack.during_fault.items())},
        "api_500s": stack.statuses.get(500, 0),
        "worker_retries": waits,
    }


@contextlib.contextmanager
def _database(name: str, pg_admin_url: str, work: Path) -> Iterator[str]:
    if name != "sqlite_full":
        with scratch_postgres(pg_admin_url) as url:
            yield url
        return
    mount = work / "small-disk"
    mount.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], check=True, capture_output=True)
    try:
        yield f"sqlite:///{mount / 'understudy.db'}"
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, capture_output=True)


def faults_table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| fault | completed | seconds | items lost | labeled twice | API 500s | API answers during the fault "
        "| worker retries |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in results:
        during = ", ".join(f"{code}: {n}" for code, n in row["api_statuses_during_fault"].items()) or "–"
        lines.append(
            f"| {row['fault']} | {'yes' if row['completed'] else 'NO'} | {row['seconds']} | {row['items_lost']} | "
            f"{row['items_labeled_twice']} | {row['api_500s']} | {during} | {row['worker_retries']} |"
        )
    return "\n".join(lines)


def run_faults(
    *, items: int, scenarios: list[str], pg_admin_url: str, work: Path, json_out: Path | None
) -> dict[str, Any]:
    results = [run_scenario(name, items=items, pg_admin_url=pg_admin_url, work=work / name) for name in scenarios]
    report = {"items": items, "job_lease_s": JOB_LEASE_S, "scenarios": results, "table": faults_table(results)}
    write_json(report, json_out)
    return report

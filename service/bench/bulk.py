"""`understudy bench bulk`: bulk labeling of a large file from the CLI, killed midway and resumed.

The run is what a team does: human labels come in from a Label Studio export, `understudy train` distils them into a
student, an admin promotes it, and `understudy label` labels a file of ``rows`` rows (the dataset's held-out texts,
repeated) through the cascade. The label command runs as a child process, is SIGKILLed after ``kill_after_s`` (or
once ``kill_after_rows`` rows are written) and started again; the bench then checks that the output holds every
input row once, in order, with no torn line, and scores the labels against gold. Figures: rows per second of the
resumed run, the child's peak memory, the share each level handled and the accuracy of accepted labels.
"""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from service.bench.report import write_json
from service.config import Settings
from service.datasets import read_labeled
from service.jobs.context import WorkerContext
from service.jobs.train_student import TrainStudentResult, train_now

TASK_NAME = "bulk"
TRAIN_EPOCHS = 5


def environment(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "UNDERSTUDY_DATA_DIR": str(settings.data_dir),
        "UNDERSTUDY_ADAPTERS_DIR": str(settings.resolved_adapters_dir),
        "UNDERSTUDY_DATABASE_URL": settings.resolved_database_url,
    }


def scratch_settings(work_dir: Path) -> Settings:
    """Settings for a benchmark's own database and student folders under ``work_dir``."""
    settings = Settings(data_dir=work_dir / "data", adapters_dir=work_dir / "adapters")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings


def prepare(
    settings: Settings, train: list[tuple[str, str]], labels: list[str], *, epsilon: float, seed: int
) -> TrainStudentResult:
    """Task, imported human labels, a trained and promoted student; returns the training job's result."""
    from service.api.schemas.tasks import TaskCreate, TaskLabel
    from service.db import transaction
    from service.store import exports, students, tasks

    ctx = WorkerContext.from_settings(settings)
    export = [
        {"id": i, "data": {"text": text}, "annotations": [{"result": [{"value": {"choices": [label]}}]}]}
        for i, (text, label) in enumerate(train)
    ]
    export_path = settings.data_dir / "labelstudio.json"
    export_path.write_text(json.dumps(export))
    with transaction(ctx.sessions) as session:
        spec = TaskCreate(
            name=TASK_NAME,
            labels=[TaskLabel(name=label, description=label) for label in labels],
            instructions="Classify the text.",
            epsilon=epsilon,
        )
        task = tasks.create_task(session, spec)
        exports.import_file(session, task=task, fmt="labelstudio", path=export_path, importer="bench")
    result = train_now(ctx, task_name=TASK_NAME, seed=seed, epochs=TRAIN_EPOCHS, on_progress=None)
    with transaction(ctx.sessions) as session:
        row = students.get(session, task=tasks.get_task(session, TASK_NAME), version=result["version"])
        students.set_promoted(session, row=row, promoted_flag=True)
    return result


def write_input(path: Path, texts: list[tuple[str, str]], rows: int) -> dict[str, str]:
    """A CSV of `rows` rows cycling through `texts`; returns gold by row id."""
    gold: dict[str, str] = {}
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text"])
        for i in range(rows):
            text, label = texts[i % len(texts)]
            writer.writerow([f"r{i}", text])
            gold[f"r{i}"] = label
    return gold


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def label_command(source: Path, out: Path, *options: str) -> list[str]:
    """`understudy label` on the bench's task, ids from the file's id column, with ``options``."""
    command = [sys.executable, "-m", "service.cli", "label", str(source), "--task", TASK_NAME, "--out", str(out)]
    return [*command, "--id-field", "id", *options]


def _label(
    settings: Settings,
    source: Path,
    out: Path,
    escalate: str,
    kill_after_s: float | None,
    kill_after_rows: int | None = None,
) -> dict[str, Any]:
    """One `understudy label` child, SIGKILLed after kill_after_s or once kill_after_rows lines are out, if given.
    Its progress bar goes to our stderr."""
    command = label_command(source, out, "--escalate", escalate)
    started = time.perf_counter()
    child = subprocess.Popen(command, env=environment(settings), stdout=subprocess.PIPE, text=True)
    deadline = None if kill_after_s is None else started + kill_after_s
    while True:
        # wait4 rather than Popen.wait: it also hands back the child's peak memory.
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        late = deadline is not None and time.perf_counter() >= deadline
        if late or (kill_after_rows is not None and _lines(out) >= kill_after_rows):
            child.send_signal(signal.SIGKILL)
            deadline = kill_after_rows = None
        time.sleep(0.05)
    stdout = child.stdout.read() if child.stdout else ""
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if kill_after_s is None and kill_after_rows is None and code != 0:
        raise RuntimeError(f"understudy label exited with {code}")
    counts = json.loads(stdout.strip().splitlines()[-1]) if code == 0 else None
    return {"exit_code": code, "wall_s": wall, "peak_rss_mib": usage.ru_maxrss / 1024, "counts": counts}


def _check_output(out: Path, gold: Mapping[str, str]) -> dict[str, Any]:
    lines = out.read_bytes().split(b"\n")
    if lines[-1]:
        raise RuntimeError("the output ends in a torn line")
    records = [json.loads(line) for line in lines[:-1]]
    ids = [record["id"] for record in records]
    if ids != list(gold):
        raise RuntimeError(f"output ids are not the input ids in order ({len(ids)} lines, {len(gold)} rows)")
    accepted = [r for r in records if r["accepted"]]
    sources = Counter(r["source"] for r in records)
    return {
        "rows": len(records),
        "in_order_once_each": True,
        "sources": dict(sources),
        "accepted_share": len(accepted) / len(records),
        "accepted_accuracy": sum(r["label"] == gold[r["id"]] for r in accepted) / len(accepted) if accepted else None,
        "accuracy": sum(r["label"] == gold[r["id"]] for r in records) / len(records),
        "reasons": dict(Counter(reason for r in records for reason in r["reasons"])),
    }


def run_bulk_bench(
    data: Path,
    text_field: str,
    label_field: str,
    *,
    work_dir: Path,
    rows: int = 100_000,
    train_size: int = 500,
    kill_after_s: float = 60.0,
    kill_after_rows: int | None = None,
    escalate: str = "review",
    epsilon: float = 0.05,
    seed: int = 0,
    json_out: Path | None = None,
) -> dict[str, Any]:
    pairs = read_labeled(data, text_field=text_field, label_field=label_field)
    random.Random(seed).shuffle(pairs)
    train, held_out = pairs[:train_size], pairs[train_size:]
    if not held_out:
        raise ValueError(f"{data} has no rows left after {train_size} training labels")
    labels = sorted({label for _, label in pairs})
    settings = scratch_settings(work_dir)
    started = time.perf_counter()
    trained = prepare(settings, train, labels, epsilon=epsilon, seed=seed)
    prepare_s = time.perf_counter() - started
    source, out = work_dir / "items.csv", work_dir / "labels.jsonl"
    out.unlink(missing_ok=True)
    gold = write_input(source, held_out, rows)
    killed = _label(settings, source, out, escalate, kill_after_s, kill_after_rows)
    rows_at_kill = _lines(out)
    resumed = _label(settings, source, out, escalate, None)
    checked = _check_output(out, gold)
    resumed_rows = rows - resumed["counts"]["resumed_from"]  # a resumed run that fails has raised
    results: dict[str, Any] = {
        "data": str(data),
        "rows": rows,
        "distinct_texts": len(held_out),
        "escalate": escalate,
        "student": {
            "version": trained["version"],
            "train_examples": trained["train_examples"],
            "gold_examples": trained["gold_examples"],
            "macro_f1_on_gold": trained["student"]["macro_f1"],
            "threshold": trained["threshold"],
        },
        "prepare_s": prepare_s,
        "killed": {**killed, "rows_written": rows_at_kill},
        "resumed": {**resumed, "rows": resumed_rows, "rows_per_s": resumed_rows / resumed["wall_s"]},
        "output": checked,
        "machine": {"cpus": os.cpu_count(), "load_average_1m": os.getloadavg()[0]},
    }
    results["table"] = bulk_table(results)
    write_json(results, json_out)
    return results


def bulk_table(results: Mapping[str, Any]) -> str:
    killed, resumed, output = results["killed"], results["resumed"], results["output"]
    accepted = output["accepted_accuracy"]
    lines = [
        "| run | rows written | wall s | rows/s | peak RSS MiB | exit |",
        "|---|---:|---:|---:|---:|---:|",
        f"| first, SIGKILL after {killed['wall_s']:.0f} s | {killed['rows_written']:,} | {killed['wall_s']:.0f} | "
        f"{killed['rows_written'] / killed['wall_s']:.0f} | {killed['peak_rss_mib']:.0f} | {killed['exit_code']} |",
        f"| resumed to the end | {resumed['rows']:,} | {resumed['wall_s']:.0f} | {resumed['rows_per_s']:.0f} | "
        f"{resumed['peak_rss_mib']:.0f} | {resumed['exit_code']} |",
        "",
        f"{output['rows']:,} output lines for {results['rows']:,} input rows, every id once and in order. "
        f"Sources: {', '.join(f'{k} {v:,}' for k, v in sorted(output['sources'].items()))}; "
        f"accepted {output['accepted_share']:.1%} at accuracy {accepted:.3f}; "
        f"all rows {output['accuracy']:.3f} against gold."
        if accepted is not None
        else f"{output['rows']:,} output lines for {results['rows']:,} input rows; none accepted.",
    ]
    return "\n".join(lines)

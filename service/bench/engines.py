"""`understudy bench engines`: one large file of generated text labeled by each engine of `understudy label`.

A student is trained on human labels and promoted (as in `bench bulk`), then a Parquet file of ``rows`` generated
texts (words drawn from the dataset's own texts, 4 to 24 to a text, so no row repeats another) is labeled by
`understudy label --engine local` and by `--engine ray --actors N` on a local Ray cluster, each a child process.
Figures: rows per second and the peak memory of the whole process tree (the Ray engine's actors and raylet are
descendants of the command), summed as PSS so shared pages count once. The two outputs are compared row by row.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from service.bench.bulk import environment, label_command, prepare, scratch_settings
from service.bench.report import write_json
from service.config import Settings
from service.datasets import read_labeled

SAMPLE_S = 2.0
"""Memory is sampled every SAMPLE_S seconds: reading a large process's smaps costs CPU the run needs."""
WRITE_ROWS = 50_000


def _write_generated(path: Path, texts: list[str], rows: int, seed: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    words = [word for text in texts for word in text.split()]
    rng = random.Random(seed)
    with pq.ParquetWriter(path, pa.schema([("id", pa.string()), ("text", pa.string())])) as writer:
        for start in range(0, rows, WRITE_ROWS):
            ids = [f"g{i}" for i in range(start, min(rows, start + WRITE_ROWS))]
            generated = [" ".join(rng.choices(words, k=rng.randint(4, 24))) for _ in ids]
            writer.write_table(pa.table({"id": ids, "text": generated}))


def _tree_pss_mib(root: int) -> float:
    """PSS of ``root`` and all its descendants, in MiB (processes that vanish mid-read are skipped)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    total_kib, stack = 0, [root]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kib += int(line.split()[1])
        except OSError:
            continue
    return total_kib / 1024


def _label(settings: Settings, source: Path, out: Path, engine: list[str]) -> dict[str, Any]:
    command = label_command(source, out, "--escalate", "review", *engine)
    started = time.perf_counter()
    child = subprocess.Popen(command, env=environment(settings), stdout=subprocess.PIPE, text=True)
    peak = 0.0
    while child.poll() is None:
        peak = max(peak, _tree_pss_mib(child.pid))
        time.sleep(SAMPLE_S)
    wall = time.perf_counter() - started
    stdout = child.stdout.read() if child.stdout else ""
    if child.returncode != 0:
        raise RuntimeError(f"understudy label {' '.join(engine)} exited with {child.returncode}")
    counts = json.loads(stdout.strip().splitlines()[-1])
    return {"wall_s": wall, "rows_per_s": counts["rows"] / wall, "peak_pss_mib": peak, "counts": counts}


def _differences(first: Path, second: Path) -> dict[str, int]:
    """Rows whose label, routing or reasons differ, and rows whose confidence differs by more than 1e-5."""
    labels = confidences = rows = 0
    with first.open() as a, second.open() as b:
        for line_a, line_b in zip(a, b, strict=True):
            rows += 1
            if line_a != line_b:
                x, y = json.loads(line_a), json.loads(line_b)
                confidences += abs(x.pop("confidence") - y.pop("confidence")) > 1e-5
                labels += x != y
    return {"rows": rows, "labels_or_reasons": labels, "confidences": confidences}


def run_engines_bench(
    data: Path,
    text_field: str,
    label_field: str,
    *,
    work_dir: Path,
    rows: int = 1_000_000,
    actors: int = 2,
    train_size: int = 500,
    epsilon: float = 0.05,
    seed: int = 0,
    json_out: Path | None = None,
) -> dict[str, Any]:
    pairs = read_labeled(data, text_field=text_field, label_field=label_field)
    random.Random(seed).shuffle(pairs)
    settings = scratch_settings(work_dir)
    trained = prepare(settings, pairs[:train_size], sorted({label for _, label in pairs}), epsilon=epsilon, seed=seed)
    source = work_dir / "generated.parquet"
    _write_generated(source, [text for text, _ in pairs], rows, seed)
    runs: dict[str, Any] = {}
    engines = {"local": ["--engine", "local"], f"ray_{actors}_actors": ["--engine", "ray", "--actors", str(actors)]}
    for name, engine in engines.items():
        out = work_dir / f"{name}.jsonl"
        out.unlink(missing_ok=True)
        runs[name] = _label(settings, source, out, engine)
    results: dict[str, Any] = {
        "data": str(data),
        "rows": rows,
        "input_mib": source.stat().st_size / 2**20,
        "student": {"version": trained["version"], "train_examples": trained["train_examples"]},
        "runs": runs,
        "differences": _differences(work_dir / "local.jsonl", work_dir / f"ray_{actors}_actors.jsonl"),
        "machine": {"cpus": os.cpu_count(), "load_average_1m": os.getloadavg()[0]},
    }
    results["table"] = engines_table(results)
    write_json(results, json_out)
    return results


def engines_table(results: Mapping[str, Any]) -> str:
    differences = results["differences"]
    lines = [
        "| engine | rows | wall s | rows/s | peak memory MiB (PSS, process tree) |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {name} | {run['counts']['rows']:,} | {run['wall_s']:.0f} | {run['rows_per_s']:.0f} | "
            f"{run['peak_pss_mib']:.0f} |"
            for name, run in results["runs"].items()
        ),
        "",
        f"{results['rows']:,} generated rows ({results['input_mib']:.0f} MiB of Parquet); between the engines "
        f"{differences['labels_or_reasons']} rows differ in label, routing or reasons and "
        f"{differences['confidences']} in confidence by more than 1e-5.",
    ]
    return "\n".join(lines)

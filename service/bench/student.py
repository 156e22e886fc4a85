"""`understudy bench student`: the LoRA student's learning curve, speed, memory and cost, beside the teacher.

For each N in ``train_sizes`` a student is trained on N labels and scored on the same held-out items: with
``accepted`` (see service.bench.student_accepted), the labels a labeling run accepted, human labels weighted
above machine ones, and the teacher scored beside the student on the same held-out items; without it, the
file's gold labels. Speed is measured on the held-out texts with the largest student. Beside the largest student,
the plain baseline a team would try first: logistic regression on frozen MiniLM embeddings (one-vs-rest for a
multi-label task), trained on the same labels. A multi-label run (``kind="multi_label"``, labels as lists) trains
the sigmoid-head student and scores micro-F1 (``student_f1``, ``baseline_f1``).

Cost per 1,000 items is CPU-seconds based: one-thread CPU time per 1,000 items times ``cpu_hour_usd``
(default 0.04 USD per vCPU-hour, about an on-demand cloud vCPU); the teacher's is its wall time per 1,000
items times ``teacher_hour_usd`` (what the teacher's machine costs per hour; default two vCPUs).
"""

from __future__ import annotations

import os
import random
import resource
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from service.bench.report import write_json
from service.bench.student_accepted import AcceptedLabels, split_held_out
from service.datasets import read_labeled
from service.pipeline import kinds, label_sets
from service.pipeline.metrics import ClassificationReport, classification_report, expected_calibration_error
from service.pipeline.probe import ProbeInput
from service.pipeline.train_plan import HUMAN_WEIGHT
from service.ports import FloatArray, Precision, TaskKind, TrainConfig, TrainExample

DEFAULT_CPU_HOUR_USD = 0.04
MIN_TIMING_S = 2.0
"""Speed runs repeat over the held-out texts until at least this long."""


def measure_speed(predict: Any, texts: Sequence[str]) -> dict[str, float]:
    predict(texts[:64])  # warm-up: first-call allocations are not throughput
    items, wall, cpu = 0, 0.0, 0.0
    while wall < MIN_TIMING_S:
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        predict(texts)
        wall += time.perf_counter() - wall_start
        cpu += time.process_time() - cpu_start
        items += len(texts)
    return {"items_per_s": items / wall, "cpu_s_per_1000": 1000 * cpu / items, "wall_s_per_1000": 1000 * wall / items}


def run_student_bench(
    data: Path,
    text_field: str,
    label_field: str,
    *,
    train_sizes: Sequence[int] = (50, 100, 200, 400, 800),
    test_size: int = 500,
    seed: int = 0,
    epochs: int = TrainConfig.epochs,
    precision: Precision = "auto",
    json_out: Path | None = None,
    plot_out: Path | None = None,
    accepted: AcceptedLabels | None = None,
    cpu_hour_usd: float = DEFAULT_CPU_HOUR_USD,
    teacher_hour_usd: float = 2 * DEFAULT_CPU_HOUR_USD,
    kind: TaskKind = "single_label",
) -> dict[str, Any]:
    """Run the benchmark and return its results (also written to ``json_out``, the curve to ``plot_out``).

    With ``accepted`` the result also holds the teacher's scores on the held-out items, the speed ratio, the
    teacher's cost and what the labeling run accepted; its held-out split must be ``split_held_out`` with
    the same ``test_size`` and ``seed``.
    """
    import torch

    from service.backends.student_lora import LoraStudent, LoraTrainer

    pairs = read_labeled(data, text_field=text_field, label_field=label_field)
    if kind == "multi_label":
        if accepted is not None:
            raise ValueError(
                "a multi-label student bench trains on the file's gold labels (run it without the teacher)"
            )
        labels = label_sets.labels_in(label for _, label in pairs)
        pairs = [(text, label_sets.canonical(label, labels)) for text, label in pairs]
    else:
        labels = tuple(sorted({label for _, label in pairs}))
    held_out, rest = split_held_out(pairs, test_size=test_size, seed=seed)
    columns = kinds.columns(kind, labels)
    if accepted is None:
        pool = [TrainExample(text, label) for text, label in rest]
    else:
        pool = [
            TrainExample(text, accepted.labels[text], weight=HUMAN_WEIGHT if text in accepted.human_texts else 1.0)
            for text, _ in rest
            if text in accepted.labels
        ]
        random.Random(seed + 1).shuffle(pool)  # every N mixes human and machine labels
    texts, truth = [t for t, _ in held_out], [label for _, label in held_out]
    index = {label: i for i, label in enumerate(columns)}
    curve: list[dict[str, Any]] = []
    student: LoraStudent | None = None
    with tempfile.TemporaryDirectory(prefix="student-bench-") as scratch:
        for n in sorted({min(n, len(pool)) for n in train_sizes}):
            started = time.perf_counter()
            result = LoraTrainer().train(
                pool[:n],
                labels,
                Path(scratch) / f"n{n}",
                TrainConfig(epochs=epochs, seed=seed),
                kind=kind,
            )
            train_s = time.perf_counter() - started
            student = LoraStudent.load(result.path, precision=precision)
            probs = student.predict_proba(texts)
            report = _report(kind, probs, truth, labels)
            ece = expected_calibration_error(probs=probs, y_true=[index[t] for t in truth])
            curve.append(
                {
                    "n_train": n,
                    "accuracy": report["accuracy"],
                    "macro_f1": report["macro_f1"],
                    **({"micro_f1": report["micro_f1"]} if "micro_f1" in report else {}),
                    "ece": ece,
                    "epochs_run": result.epochs_run,
                    "train_s": train_s,
                }
            )
        if student is None:
            raise ValueError("no training sizes to run")
        baseline = _embedding_baseline(kind, pool[: curve[-1]["n_train"]], held_out, labels, precision)
        speed = measure_speed(student.predict_proba, texts)
        # One thread per worker process is the cheapest way to fill the cores, and its CPU time is not
        # inflated by threads spinning while neighbours hold the cores; it is what the cost is based on.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            single = measure_speed(student.predict_proba, texts)
        finally:
            torch.set_num_threads(threads)
    f1_key = "micro_f1" if kind == "multi_label" else "macro_f1"
    results: dict[str, Any] = {
        "data": str(data),
        "kind": kind,
        "labels": list(labels),
        "trained_on": "accepted labels" if accepted is not None else "gold labels",
        "test_size": len(held_out),
        "seed": seed,
        "precision": student.precision,
        "curve": curve,
        "student": {
            **speed,
            "one_thread_items_per_cpu_s": 1000 / single["cpu_s_per_1000"],
            "cost_per_1000_usd": single["cpu_s_per_1000"] / 3600 * cpu_hour_usd,
            "macro_f1": curve[-1]["macro_f1"],
            "accuracy": curve[-1]["accuracy"],
        },
        "baseline": baseline,
        "student_f1": curve[-1][f1_key],
        "baseline_f1": baseline[f1_key],
        "student_items_per_s": speed["items_per_s"],
        "f1": f1_key,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "machine": {
            "torch_threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
            "load_average_1m": os.getloadavg()[0],
        },
        "cost_assumption": f"student: CPU-seconds x {cpu_hour_usd} USD per vCPU-hour; "
        f"teacher: wall-seconds x {teacher_hour_usd} USD per hour of its machine",
    }
    if accepted is not None:
        results["accepted"] = accepted.summary()
        results["teacher"] = _teacher_side(
            accepted.teacher_predictions, accepted.teacher_items_per_s, held_out, labels, teacher_hour_usd
        )
        results["speed_ratio"] = speed["items_per_s"] / accepted.teacher_items_per_s
    results["table"] = student_table(results)
    write_json(results, json_out)
    if plot_out is not None:
        plot_learning_curve(results, plot_out)
    return results


def _report(kind: TaskKind, probs: FloatArray, truth: Sequence[str], labels: tuple[str, ...]) -> ClassificationReport:
    columns = kinds.columns(kind, labels)
    return kinds.report(kind, y_true=truth, y_pred=[columns[i] for i in probs.argmax(axis=1)], labels=labels)


def _embedding_baseline(
    kind: TaskKind,
    train: Sequence[TrainExample],
    held_out: Sequence[tuple[str, str]],
    labels: tuple[str, ...],
    precision: Precision,
) -> dict[str, Any]:
    """Logistic regression on frozen MiniLM embeddings (one-vs-rest for label sets; the service's probe on
    embeddings alone, without its hashed words), trained on the student's largest training set, unweighted."""
    from service.backends.embedder_st import SentenceEmbedder

    embedder = SentenceEmbedder(precision="float32" if precision == "int8" else precision)
    columns = kinds.columns(kind, labels)
    index = {name: i for i, name in enumerate(columns)}
    started = time.perf_counter()
    probe = kinds.probe_fitter(kind)(
        inputs=ProbeInput.of(embedder.embed([e.text for e in train]), None),
        labels=np.asarray([index[e.label] for e in train]),
        n_labels=len(columns),
    )
    train_s = time.perf_counter() - started
    if probe is None:
        raise ValueError(f"too few training labels ({len(train)}) for the embedding baseline")
    probs = probe.predict(ProbeInput.of(embedder.embed([text for text, _ in held_out]), None))
    report = _report(kind, probs, [label for _, label in held_out], labels)
    return {
        "model": "logistic regression on MiniLM embeddings" + (" (one-vs-rest)" if kind == "multi_label" else ""),
        "n_train": len(train),
        "accuracy": report["accuracy"],
        "macro_f1": report["macro_f1"],
        **({"micro_f1": report["micro_f1"]} if "micro_f1" in report else {}),
        "train_s": train_s,
    }


def _teacher_side(
    predictions: Mapping[str, str],
    items_per_s: float,
    held_out: Sequence[tuple[str, str]],
    labels: tuple[str, ...],
    hour_usd: float,
) -> dict[str, Any]:
    scored = [(label, predictions[text]) for text, label in held_out if text in predictions]
    report = classification_report(y_true=[t for t, _ in scored], y_pred=[p for _, p in scored], labels=labels)
    return {
        "items_per_s": items_per_s,
        "cost_per_1000_usd": 1000 / items_per_s / 3600 * hour_usd,
        "macro_f1": report["macro_f1"],
        "accuracy": report["accuracy"],
        "n_scored": len(scored),
    }


def _cell(value: Any, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def student_table(results: Mapping[str, Any]) -> str:
    """The learning curve and the speed/cost comparison as markdown."""
    multi = results.get("kind") == "multi_label"
    accuracy = "exact-set accuracy" if multi else "accuracy"
    lines = [
        f"| N train | {accuracy} | macro-F1 |{' micro-F1 |' if multi else ''} ECE | epochs | train s |",
        "|---:|---:|---:|---:|---:|---:|" + ("---:|" if multi else ""),
    ]
    for row in results["curve"]:
        cells = [row["n_train"], row["accuracy"], row["macro_f1"], *([row["micro_f1"]] if multi else [])]
        cells += [row["ece"], row["epochs_run"], row["train_s"]]
        lines.append("| " + " | ".join(_cell(c, 1 if i == len(cells) - 1 else 3) for i, c in enumerate(cells)) + " |")
    student, teacher = results["student"], results.get("teacher", {})
    lines += [
        "",
        f"| model | macro-F1 | {accuracy} | items/s | cost per 1,000 items (USD) |",
        "|---|---:|---:|---:|---:|",
        f"| student | {_cell(student['macro_f1'])} | {_cell(student['accuracy'])} | "
        f"{_cell(student['items_per_s'], 0)} | {_cell(student['cost_per_1000_usd'], 6)} |",
    ]
    baseline = results.get("baseline")
    if baseline is not None:
        lines.append(f"| {baseline['model']} | {_cell(baseline['macro_f1'])} | {_cell(baseline['accuracy'])} | – | – |")
    if "student_f1" in results:
        lines.append(
            f"\n{'Micro' if multi else 'Macro'}-F1 on the same {results['test_size']} held-out items: student "
            f"{results['student_f1']:.3f}, baseline {results['baseline_f1']:.3f}."
        )
    if teacher:
        lines.append(
            f"| teacher | {_cell(teacher.get('macro_f1'))} | {_cell(teacher.get('accuracy'))} | "
            f"{_cell(teacher.get('items_per_s'), 1)} | {_cell(teacher.get('cost_per_1000_usd'), 6)} |"
        )
    if "speed_ratio" in results:
        lines.append(f"\nStudent/teacher speed ratio: {results['speed_ratio']:.1f}x")
    if "accepted" in results:
        run = results["accepted"]
        lines.append(
            f"\nTrained on what a labeling run accepted: {run['human_labels']} human labels and "
            f"{run['machine_accepted']} teacher labels accepted at confidence >= {_cell(run['threshold'])} "
            f"(error bound {_cell(run['error_bound'])}, realised accuracy {_cell(run['accepted_machine_accuracy'])}); "
            f"{run['machine_sent_to_review']} teacher labels were left for review and not used."
        )
    return "\n".join(lines)


def plot_learning_curve(results: Mapping[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [row["n_train"] for row in results["curve"]]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(sizes, [row["macro_f1"] for row in results["curve"]], marker="o", label="student macro-F1")
    if all("micro_f1" in row for row in results["curve"]):
        ax.plot(sizes, [row["micro_f1"] for row in results["curve"]], marker="^", label="student micro-F1")
    ax.plot(sizes, [row["accuracy"] for row in results["curve"]], marker="s", label="student accuracy")
    teacher_f1 = results.get("teacher", {}).get("macro_f1")
    if teacher_f1 is not None:
        ax.axhline(teacher_f1, color="grey", linestyle="--", label="teacher macro-F1")
    baseline = results.get("baseline")
    if baseline is not None and "baseline_f1" in results:
        ax.plot(
            [baseline["n_train"]],
            [results["baseline_f1"]],
            marker="*",
            markersize=12,
            linestyle="none",
            color="black",
            label=f"baseline: {baseline['model'].split(' (')[0]}",
        )
    ax.set_xscale("log")
    ax.set_xlabel(f"training labels ({results['trained_on']})")
    ax.set_ylabel("score on held-out items")
    ax.set_title(f"LoRA student learning curve ({Path(results['data']).name})")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

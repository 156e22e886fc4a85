"""`understudy bench quality`: the confidence filter against its baselines on a labeled JSONL/CSV file.

The teacher scores every item once (``teacher_scores``, cached by ``cached_scores``); the labeling loop is
then simulated over seeds with a reviewer drawn from gold: seed reviews of the likeliest errors -> calibration
-> uniform cold-start reviews -> certified policy -> route -> audits and priority reviews within the budget. Items
labeled before the run (the teacher's few-shot pool), with the teacher's scores of them, calibrate and certify
as the service's reviewed items do. Baselines
spend the same budget: accept every teacher label, random review, a plain max-probability threshold.
``data`` is a .jsonl/.csv/.parquet file or ``builtin:<name>`` (see service.datasets).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from service.bench.quality_sim import Outcome, Pool, RunConfig, run_max_prob, run_random_review, simulate_reviewer
from service.bench.report import write_json
from service.bench.stacked_run import run_active_learning, run_certified, run_certified_lr
from service.datasets import read_labeled
from service.pipeline import label_sets
from service.pipeline.review_order import density
from service.ports import FloatArray, TaskKind

TeacherScores = Callable[[Sequence[str], tuple[str, ...]], FloatArray]
"""(texts, the task's label names) -> (n, columns) teacher probabilities over the score columns (pipeline/kinds.py:
the labels in that order, or a multi-label task's label sets)."""
Embed = Callable[[Sequence[str]], FloatArray]
"""texts -> (n, d) L2-normalised embeddings."""
LabeledScores = Callable[[tuple[str, ...]], FloatArray]
"""the task's label names -> (m, columns) teacher probabilities of the items labeled before the run (``labeled``),
in order."""

BUDGET_SHARES = (0.05, 0.1, 0.2)
"""Review budgets, as shares of the items to label."""
METHODS = ("stacked", "teacher_alone", "random_review", "max_prob_threshold", "active_learning", "certified_lr")
METHOD_NAMES = {
    "stacked": "stacked labeler (teacher + probe)",
    "teacher_alone": "teacher alone, certified",
    "random_review": "random review",
    "max_prob_threshold": "max-prob ≥ {threshold}",
    "active_learning": "active learning, no LLM",
    "certified_lr": "certified LR peer, no LLM (uncorrected)",
}
NEEDS_EMBEDDINGS = frozenset({"stacked", "active_learning", "certified_lr"})
RUNS: dict[str, Callable[[Pool, RunConfig, np.random.Generator, npt.NDArray[np.int64]], Outcome]] = {
    "stacked": partial(run_certified, sources=("teacher", "probe")),
    "teacher_alone": partial(run_certified, sources=("teacher",)),
    "random_review": run_random_review,
    "max_prob_threshold": run_max_prob,
    "active_learning": run_active_learning,
    "certified_lr": run_certified_lr,
}
_SUMMARY_KEYS = (
    "accepted_accuracy",
    "coverage",
    "human_reviews",
    "error_bound",
    "final_accuracy",
    "realised_error",
    "cold_start_reviews",
    "final_f1",
)


def cached_scores(cache_dir: Path, name: str, compute: Callable[[], FloatArray]) -> FloatArray:
    """``compute()`` once, then read back from ``cache_dir/<name>.npy``."""
    path = cache_dir / f"{name}.npy"
    if path.exists():
        cached: FloatArray = np.load(path)
        return cached
    result = np.asarray(compute(), dtype=np.float64)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(path, result)
    return result


def content_key(texts: Sequence[str], labels: Sequence[str], model: str) -> str:
    """A short digest naming a cache entry for these texts, label set and scoring model."""
    digest = hashlib.sha256(model.encode())
    for text in [*sorted(set(labels)), "\x00", *texts]:
        digest.update(text.encode() + b"\x00")
    return digest.hexdigest()[:16]


def _mean(values: Sequence[float | int | None]) -> float | None:
    present = [float(v) for v in values if v is not None]
    return float(np.mean(present)) if present else None


def _summarise(per_seed: list[dict[str, float | int | None]]) -> dict[str, Any]:
    summary: dict[str, Any] = {
        key: _mean([run[key] for run in per_seed]) for key in _SUMMARY_KEYS if key in per_seed[0]
    }
    summary["share_within_epsilon"] = _mean([run["within_epsilon"] for run in per_seed])
    summary["certified_share"] = _mean([run["error_bound"] is not None for run in per_seed])
    return summary


def run_quality_bench(
    data: Path,
    text_field: str,
    label_field: str,
    *,
    teacher_scores: TeacherScores,
    kind: TaskKind = "single_label",
    budget_shares: Sequence[float] = BUDGET_SHARES,
    epsilon: float = 0.05,
    delta: float = 0.1,
    reviewer_noise: float = 0.0,
    seed: int = 0,
    seeds: int = 1,
    audit_share: float = 0.05,
    target_coverage: float | None = None,
    min_reviews: int = 30,
    baseline_threshold: float = 0.9,
    embed: Embed | None = None,
    labeled: Sequence[tuple[str, str]] = (),
    labeled_scores: LabeledScores | None = None,
    limit: int | None = None,
    name: str | None = None,
    json_out: Path | None = None,
    plot_out: Path | None = None,
) -> dict[str, Any]:
    """Run the certified labelers and the baselines at each review budget (a share of the items) over ``seeds``
    seeded runs and report the mean figures.

    Returns (and writes to ``json_out``) a dict with, per budget (``budgets``, keyed by the share as a percent),
    one summary per method (see ``METHODS``): ``accepted_accuracy``, ``coverage``, ``human_reviews``,
    ``error_bound``, ``final_accuracy``, ``realised_error`` (of accepted machine labels against gold),
    ``share_within_epsilon`` (share of seeds with realised error <= epsilon) and ``certified_share``; every
    method's per-seed rows (``per_seed``, by budget); and a markdown ``table``. ``plot_out`` gets final accuracy
    and coverage against the budget as a PNG.

    ``labeled`` are (text, label) pairs labeled before the run (the teacher's few-shot pool) and
    ``labeled_scores`` the teacher's (leave-one-out) scores of them: every method gets them as human labels, and
    the certified labelers fit their first candidate on them (see stacked_run). ``embed``
    gives the MiniLM embeddings the probe and the active-learning baseline read. ``limit`` keeps a seeded random
    subset of that many items; ``name`` is the dataset's name in the report (default: the file's).

    ``kind`` multi_label reads each label as a list of labels (or a JSON string of one) and runs every method on
    label sets (pipeline/label_sets.py): an item is right when its whole set is, and each seed's row also has
    ``final_f1``, the micro-F1 of the final label sets against gold.
    """
    pairs = read_labeled(data, text_field=text_field, label_field=label_field)
    texts, label_strings = [text for text, _ in pairs], [label for _, label in pairs]
    if limit is not None and limit < len(texts):
        keep = np.sort(np.random.default_rng(seed).choice(len(texts), limit, replace=False))
        texts, label_strings = [texts[i] for i in keep], [label_strings[i] for i in keep]
    task_labels, names, column = _columns(label_strings, kind)
    if len(names) < 2:
        raise ValueError(f"{data} needs at least two labels in {label_field!r}, found {names}")
    gold = np.array([names.index(column(label)) for label in label_strings], dtype=np.int64)
    probs = np.asarray(teacher_scores(texts, task_labels), dtype=np.float64)
    if probs.shape != (len(texts), len(names)):
        raise ValueError(f"teacher_scores gave shape {probs.shape}, expected {(len(texts), len(names))}")
    known = [(text, column(label)) for text, label in labeled]
    pool = replace(
        _pool(
            probs,
            gold,
            names,
            embed,
            texts,
            known,
            None if labeled_scores is None else partial(labeled_scores, task_labels),
        ),
        kind=kind,
    )
    label_count = len(task_labels)
    methods = [m for m in METHODS if pool.embeddings is not None or m not in NEEDS_EMBEDDINGS]
    budgets: dict[str, Any] = {}
    runs: dict[str, dict[str, list[dict[str, float | int | None]]]] = {}
    # Small matrices: BLAS threads only contend (a probe fit took 1.5 s with two threads beside another process,
    # 0.1 s with one).
    with threadpool_limits(limits=1, user_api="blas"):
        for share in budget_shares:
            config = RunConfig(
                epsilon=epsilon,
                delta=delta,
                review_budget=round(share * len(texts)),
                reviewer_noise=reviewer_noise,
                audit_share=audit_share,
                target_coverage=target_coverage,
                min_reviews=min_reviews,
                baseline_threshold=baseline_threshold,
            )
            per_seed: dict[str, list[dict[str, float | int | None]]] = {method: [] for method in methods}
            for run in range(seeds):
                rng = np.random.default_rng([seed, run])
                reviewer = simulate_reviewer(gold, len(names), reviewer_noise, rng)
                for method in methods:
                    outcome = RUNS[method](
                        pool, config, np.random.default_rng([seed, run, METHODS.index(method)]), reviewer
                    )
                    row = {"seed": run, **outcome.metrics(gold, epsilon)}
                    if kind == "multi_label":
                        row["final_f1"] = label_sets.micro_f1(outcome.final, gold, label_count)
                    per_seed[method].append(row)
            key = f"{round(100 * share)}%"
            budgets[key] = {"review_budget": config.review_budget, **{m: _summarise(per_seed[m]) for m in methods}}
            runs[key] = per_seed
    result: dict[str, Any] = {
        "dataset": name or data.name,
        "n_items": len(texts),
        "labeled_before": int(0 if pool.labeled_labels is None else pool.labeled_labels.size),
        "labels": list(names),
        "epsilon": epsilon,
        "delta": delta,
        "reviewer_noise": reviewer_noise,
        "seeds": seeds,
        "kind": kind,
        "teacher_accuracy": float((probs.argmax(axis=1) == gold).mean()),
        "max_prob_threshold": baseline_threshold,
        "target_coverage": target_coverage,
        "budgets": budgets,
        "per_seed": runs,
    }
    if kind == "multi_label":
        result["task_labels"] = list(task_labels)
        result["teacher_f1"] = label_sets.micro_f1(probs.argmax(axis=1), gold, label_count)
    result["table"] = quality_table([result])
    write_json(result, json_out)
    if plot_out is not None:
        plot_budgets(result, plot_out)
    return result


def _columns(
    label_strings: Sequence[str], kind: TaskKind
) -> tuple[tuple[str, ...], tuple[str, ...], Callable[[str], str]]:
    """The task's labels, the score columns and how a row's label value names its column (an unknown label set
    names none, "")."""
    if kind != "multi_label":
        names = tuple(sorted(set(label_strings)))
        return names, names, lambda label: label
    task_labels = label_sets.labels_in(label_strings)

    def column(label: str) -> str:
        try:
            return label_sets.canonical(label, task_labels)
        except ValueError:
            return ""

    return task_labels, label_sets.set_names(task_labels), column


def _pool(
    probs: FloatArray,
    gold: npt.NDArray[np.int64],
    names: tuple[str, ...],
    embed: Embed | None,
    texts: list[str],
    labeled: Sequence[tuple[str, str]],
    labeled_scores: Callable[[], FloatArray] | None,
) -> Pool:
    embeddings = None if embed is None else np.asarray(embed(texts), dtype=np.float64)
    in_task = [label in names for _, label in labeled]
    known = [(text, names.index(label)) for (text, label), keep in zip(labeled, in_task, strict=True) if keep]
    labeled_probs = None
    if labeled_scores is not None and known:
        labeled_probs = np.asarray(labeled_scores(), dtype=np.float64)
        if labeled_probs.shape != (len(labeled), len(names)):
            raise ValueError(f"labeled_scores gave shape {labeled_probs.shape}, expected {(len(labeled), len(names))}")
        labeled_probs = labeled_probs[np.asarray(in_task)]
    return Pool(
        probs=probs,
        gold=gold,
        embeddings=embeddings,
        density=np.full(len(texts), 0.5) if embeddings is None else density(embeddings=embeddings),
        labeled_embeddings=(
            None if embed is None or not known else np.asarray(embed([t for t, _ in known]), dtype=np.float64)
        ),
        texts=tuple(texts),
        labeled_texts=tuple(t for t, _ in known) if known else None,
        labeled_labels=np.array([label for _, label in known], dtype=np.int64) if known else None,
        labeled_probs=labeled_probs,
    )


def _cell(value: Any, percent: bool = True) -> str:
    if value is None:
        return "–"
    return f"{100 * value:.1f}%" if percent else f"{value:.0f}"


def quality_table(results: Sequence[dict[str, Any]]) -> str:
    """A markdown table: one row per dataset, budget and method, means over seeds (with multi-label runs, the
    accuracies are of whole label sets and a last column gives the final micro-F1)."""
    sets = any(result.get("kind") == "multi_label" for result in results)
    lines = [
        "| dataset | budget | method | coverage | accepted acc. | error bound | realised error | runs within ε "
        "| final acc. |" + (" final micro-F1 |" if sets else ""),
        "|---|---|---|---|---|---|---|---|---|" + ("---|" if sets else ""),
    ]
    for result in results:
        for budget, rows in result["budgets"].items():
            for method in METHODS:
                if method not in rows:
                    continue
                row = rows[method]
                label = METHOD_NAMES[method].format(threshold=result["max_prob_threshold"])
                lines.append(
                    f"| {result['dataset']} | {budget} ({rows['review_budget']}) | {label} | {_cell(row['coverage'])} "
                    f"| {_cell(row['accepted_accuracy'])} | {_cell(row['error_bound'])} "
                    f"| {_cell(row['realised_error'])} | {_cell(row['share_within_epsilon'])} "
                    f"| {_cell(row['final_accuracy'])} |" + (f" {_cell(row.get('final_f1'))} |" if sets else "")
                )
    return "\n".join(lines)


def plot_budgets(result: dict[str, Any], path: Path) -> None:
    """Final label accuracy and coverage against the review budget, one line per method (mean over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = result["budgets"]
    shares = [float(key.rstrip("%")) for key in budgets]
    figure, (accuracy, coverage) = plt.subplots(1, 2, figsize=(10, 4))
    for method in METHODS:
        if method not in next(iter(budgets.values())):
            continue
        label = METHOD_NAMES[method].format(threshold=result["max_prob_threshold"])
        accuracy.plot(shares, [rows[method]["final_accuracy"] for rows in budgets.values()], marker="o", label=label)
        coverage.plot(shares, [rows[method]["coverage"] for rows in budgets.values()], marker="o", label=label)
    accuracy.set_ylabel("final label accuracy")
    coverage.set_ylabel("coverage (accepted without review)")
    for axes in (accuracy, coverage):
        axes.set_xlabel("review budget, % of items")
        axes.grid(alpha=0.3)
    accuracy.legend(fontsize=8)
    figure.suptitle(
        f"{result['dataset']}: {result['n_items']} items + {result['labeled_before']} labeled, "
        f"ε={result['epsilon']}, δ={result['delta']}, {result['seeds']} seeds"
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)

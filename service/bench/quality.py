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
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from service.bench.quality_sim import (
    Outcome,
    Pool,
    RunConfig,
    run_accept_all,
    run_filter,
    run_max_prob,
    run_random_review,
    simulate_reviewer,
)
from service.datasets import read_labeled
from service.pipeline.review_order import density
from service.ports import FloatArray

TeacherScores = Callable[[Sequence[str], tuple[str, ...]], FloatArray]
"""(texts, label names) -> (n, k) teacher probabilities over the labels, in that order."""
Embed = Callable[[Sequence[str]], FloatArray]
"""texts -> (n, d) L2-normalised embeddings."""
LabeledScores = Callable[[tuple[str, ...]], FloatArray]
"""label names -> (m, k) teacher probabilities of the items labeled before the run (``labeled``), in order."""

METHODS = ("filter", "accept_all", "random_review", "max_prob_threshold")
_SUMMARY_KEYS = (
    "accepted_accuracy",
    "coverage",
    "human_reviews",
    "error_bound",
    "final_accuracy",
    "realised_error",
    "audit_error",
    "cold_start_reviews",
    "audit_reviews",
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
    summary: dict[str, Any] = {key: _mean([run[key] for run in per_seed]) for key in _SUMMARY_KEYS}
    summary["share_within_epsilon"] = _mean([run["within_epsilon"] for run in per_seed])
    summary["certified_share"] = _mean([run["error_bound"] is not None for run in per_seed])
    return summary


def run_quality_bench(
    data: Path,
    text_field: str,
    label_field: str,
    *,
    teacher_scores: TeacherScores,
    review_budget: int,
    epsilon: float = 0.05,
    delta: float = 0.1,
    reviewer_noise: float = 0.0,
    seed: int = 0,
    seeds: int = 1,
    audit_share: float = 0.05,
    seed_reviews: int = 40,
    calibration_share: float = 0.3,
    baseline_threshold: float = 0.9,
    embed: Embed | None = None,
    labeled: Sequence[tuple[str, str]] = (),
    labeled_scores: LabeledScores | None = None,
    limit: int | None = None,
    name: str | None = None,
    json_out: Path | None = None,
    plot_out: Path | None = None,
) -> dict[str, Any]:
    """Run the filter and the baselines over ``seeds`` seeded runs and report the mean figures.

    Returns (and writes to ``json_out``) a dict with the filter's ``accepted_accuracy``, ``coverage``,
    ``human_reviews``, ``error_bound``, ``final_accuracy``, ``realised_error`` (of accepted machine
    labels against gold), ``share_within_epsilon`` (share of seeds with realised error <= epsilon), one
    object per baseline (``accept_all``, ``random_review``, ``max_prob_threshold``), ``per_seed`` rows,
    the accuracy-vs-reviews ``curve`` and a markdown ``table``. ``plot_out`` gets the curve as a PNG.

    The filter spends ``seed_reviews`` on the head of its review queue (the labels most likely wrong; without
    scored labeled items, the calibration is fitted on them), ``calibration_share`` of the rest
    on uniform cold-start reviews among items that could ever be accepted (the policy's sample), and the
    remainder on the review queue (priority order, audits included). Unreviewed items keep the machine
    label in ``final_accuracy``. ``embed`` (optional) enables the neighbour and out-of-distribution
    signals and density; ``labeled`` are (text, label) pairs labeled before the run (the teacher's few-shot
    pool), the service's labeled items from the start, and ``labeled_scores`` the teacher's scores of them: with
    both, the filter calibrates on one half of them and certifies on the other. ``limit`` keeps a seeded random
    subset of that many items; ``name`` is the dataset's name in the report (default: the file's).
    """
    pairs = read_labeled(data, text_field=text_field, label_field=label_field)
    texts, label_strings = [text for text, _ in pairs], [label for _, label in pairs]
    if limit is not None and limit < len(texts):
        keep = np.sort(np.random.default_rng(seed).choice(len(texts), limit, replace=False))
        texts, label_strings = [texts[i] for i in keep], [label_strings[i] for i in keep]
    names = tuple(sorted(set(label_strings)))
    if len(names) < 2:
        raise ValueError(f"{data} needs at least two labels in {label_field!r}, found {names}")
    gold = np.array([names.index(label) for label in label_strings], dtype=np.int64)
    probs = np.asarray(teacher_scores(texts, names), dtype=np.float64)
    if probs.shape != (len(texts), len(names)):
        raise ValueError(f"teacher_scores gave shape {probs.shape}, expected {(len(texts), len(names))}")
    embeddings = None if embed is None else np.asarray(embed(texts), dtype=np.float64)
    in_task = [label in names for _, label in labeled]
    known = [(text, names.index(label)) for (text, label), keep in zip(labeled, in_task, strict=True) if keep]
    labeled_probs = None
    if labeled_scores is not None and known:
        labeled_probs = np.asarray(labeled_scores(names), dtype=np.float64)
        if labeled_probs.shape != (len(labeled), len(names)):
            raise ValueError(f"labeled_scores gave shape {labeled_probs.shape}, expected {(len(labeled), len(names))}")
        labeled_probs = labeled_probs[np.asarray(in_task)]
    pool = Pool(
        probs=probs,
        gold=gold,
        embeddings=embeddings,
        density=np.full(len(texts), 0.5) if embeddings is None else density(embeddings=embeddings),
        labeled_embeddings=(
            None if embed is None or not known else np.asarray(embed([t for t, _ in known]), dtype=np.float64)
        ),
        labeled_labels=np.array([label for _, label in known], dtype=np.int64) if known else None,
        labeled_probs=labeled_probs,
    )
    config = RunConfig(
        epsilon=epsilon,
        delta=delta,
        review_budget=review_budget,
        reviewer_noise=reviewer_noise,
        audit_share=audit_share,
        seed_reviews=seed_reviews,
        calibration_share=calibration_share,
        baseline_threshold=baseline_threshold,
    )
    per_seed: dict[str, list[dict[str, float | int | None]]] = {method: [] for method in METHODS}
    curves: dict[str, list[FloatArray]] = {method: [] for method in METHODS}
    for run in range(seeds):
        rng = np.random.default_rng([seed, run])
        reviewer = simulate_reviewer(gold, len(names), reviewer_noise, rng)
        outcomes: dict[str, Outcome] = {
            "filter": run_filter(pool, config, rng, reviewer),
            "accept_all": run_accept_all(pool),
            "random_review": run_random_review(pool, config, rng, reviewer),
            "max_prob_threshold": run_max_prob(pool, config, rng, reviewer),
        }
        for method, outcome in outcomes.items():
            per_seed[method].append({"seed": run, **outcome.metrics(gold, epsilon)})
            curves[method].append(outcome.accuracy_curve(gold, review_budget))

    result: dict[str, Any] = {
        "dataset": name or data.name,
        "n_items": len(texts),
        "labels": list(names),
        "epsilon": epsilon,
        "delta": delta,
        "review_budget": review_budget,
        "reviewer_noise": reviewer_noise,
        "seeds": seeds,
        "teacher_accuracy": float((probs.argmax(axis=1) == gold).mean()),
        **_summarise(per_seed["filter"]),
    }
    for method in METHODS[1:]:
        result[method] = _summarise(per_seed[method])
    result["max_prob_threshold"]["threshold"] = baseline_threshold
    result["per_seed"] = per_seed["filter"]
    result["curve"] = {
        "reviews": list(range(review_budget + 1)),
        **{method: np.mean(curves[method], axis=0).round(5).tolist() for method in METHODS},
    }
    result["table"] = quality_table([result])
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2))
    if plot_out is not None:
        plot_accuracy_curve(result, plot_out)
    return result


def _cell(value: Any, percent: bool = True) -> str:
    if value is None:
        return "–"
    return f"{100 * value:.1f}%" if percent else f"{value:.0f}"


def quality_table(results: Sequence[dict[str, Any]]) -> str:
    """A markdown table: one row per dataset and method, means over seeds."""
    lines = [
        "| dataset | method | accepted acc. | coverage | reviews | error bound | realised error "
        "| runs within ε | final acc. |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        for method in METHODS:
            row = result if method == "filter" else result[method]
            label = {"max_prob_threshold": f"max-prob ≥ {result['max_prob_threshold']['threshold']}"}.get(
                method, method.replace("_", " ")
            )
            lines.append(
                f"| {result['dataset']} | {label} | {_cell(row['accepted_accuracy'])} | {_cell(row['coverage'])} "
                f"| {_cell(row['human_reviews'], percent=False)} | {_cell(row['error_bound'])} "
                f"| {_cell(row['realised_error'])} | {_cell(row['share_within_epsilon'])} "
                f"| {_cell(row['final_accuracy'])} |"
            )
    return "\n".join(lines)


def plot_accuracy_curve(result: dict[str, Any], path: Path) -> None:
    """Final label accuracy against human reviews spent, one line per method (mean over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = result["curve"]
    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    for method in ("filter", "max_prob_threshold", "random_review", "accept_all"):
        axes.plot(curve["reviews"], curve[method], label=method.replace("_", " "))
    axes.set_xlabel("human reviews spent")
    axes.set_ylabel("final label accuracy")
    axes.set_title(f"{result['dataset']}: ε={result['epsilon']}, δ={result['delta']}, {result['seeds']} seeds")
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)

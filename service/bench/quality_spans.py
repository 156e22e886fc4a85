"""`understudy bench quality --kind spans`: what a spans task's review budget buys, run as the service runs it.

Every item gets the teacher's proposed span set (kNN few-shot from a labeled pool kept aside, scored once and
cached). Per seed and review budget, the service's path: the budget's reviews are a uniform sample of the items
(proposals are reviewed in random order, jobs/span_scoring.py), corrected to gold by a simulated reviewer; a LoRA
span tagger is trained on every human label (the pool and the reviews) as the worker's train_student job does,
its threshold certified on its held-out gold (cascade.fit_student_threshold), and, when the promotion gate passes,
it accepts the unreviewed items at or above that threshold. What it does not accept keeps the teacher's proposal
as its machine label, or the tagger's own set where the teacher lost to it on gold and is no longer asked
(cascade.escalates), as the service suggests them for review. Beside it: the teacher alone (every proposal
accepted) and random review (the same reviews, every other proposal accepted). An item is right when its whole span
set equals gold; ``final_f1`` is the entity micro-F1 of every item's final set (seqeval's convention).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from service.bench.report import write_json
from service.pipeline import span_sets
from service.pipeline.cascade import escalates, fit_student_threshold, promotion_gate
from service.pipeline.train_plan import plan_training
from service.ports import TrainExample
from service.store.history import TrainingRow

SpanSets = list[tuple[str, float]]
"""Per text, a span set's stored name and its confidence."""
Propose = Callable[[Sequence[str]], SpanSets]
TrainTagger = Callable[[Sequence[TrainExample], int, Path], Callable[[Sequence[str]], SpanSets]]
"""Train a tagger on the examples with a seed in a folder; returns what predicts with it."""
METHODS = ("service", "teacher_alone", "random_review")
PROMOTION_MARGIN = 0.02


def run_span_quality_bench(
    items: Sequence[tuple[str, str]],
    pool: Sequence[tuple[str, str]],
    labels: tuple[str, ...],
    *,
    propose: Propose,
    train_tagger: TrainTagger,
    budget_shares: Sequence[float] = (0.1,),
    epsilon: float = 0.1,
    delta: float = 0.1,
    seed: int = 0,
    seeds: int = 20,
    name: str = "",
    json_out: Path | None = None,
) -> dict[str, Any]:
    """``items`` and ``pool`` are (text, stored span set) pairs: the items to label, and the labeled pool kept aside
    (the teacher's few-shot examples, and human labels the tagger learns from). Returns (and writes to
    ``json_out``) per budget one summary per method (``coverage``, ``realised_error``, ``share_within_epsilon``,
    ``final_f1``, ``final_accuracy``, ``human_reviews``, ``certified_share``) and every seed's rows."""
    texts = [text for text, _ in items]
    gold = [label for _, label in items]
    teacher = propose(texts)
    teacher_sets = [label for label, _ in teacher]
    budgets: dict[str, Any] = {}
    runs: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="span-quality-") as scratch:
        for share in budget_shares:
            budget = round(share * len(items))
            per_seed: dict[str, list[dict[str, Any]]] = {method: [] for method in METHODS}
            for run in tqdm(range(seeds), desc=f"{round(100 * share)}% budget", unit="seed"):
                reviewed = np.random.default_rng([seed, run]).permutation(len(items))[:budget]
                service = _service_run(
                    items, pool, teacher_sets, reviewed, labels, train_tagger, Path(scratch) / f"{share}-{run}",
                    seed=run, epsilon=epsilon, delta=delta,
                )  # fmt: skip
                per_seed["service"].append({"seed": run, **service})
                everything = np.ones(len(items), dtype=bool)
                nothing = np.array([], dtype=np.int64)
                per_seed["teacher_alone"].append(
                    {"seed": run, **_metrics(teacher_sets, gold, nothing, everything, labels, epsilon)}
                )
                per_seed["random_review"].append(
                    {"seed": run, **_metrics(teacher_sets, gold, reviewed, everything, labels, epsilon)}
                )
            key = f"{round(100 * share)}%"
            budgets[key] = {"review_budget": budget, **{m: _summary(per_seed[m]) for m in METHODS}}
            runs[key] = per_seed
    result: dict[str, Any] = {
        "dataset": name,
        "kind": "spans",
        "n_items": len(items),
        "labeled_before": len(pool),
        "labels": list(labels),
        "epsilon": epsilon,
        "delta": delta,
        "seeds": seeds,
        "teacher_f1": span_sets.entity_report(y_true=gold, y_pred=teacher_sets, labels=labels).get("micro_f1", 0.0),
        "teacher_accuracy": float(np.mean([t == g for t, g in zip(teacher_sets, gold, strict=True)])),
        "budgets": budgets,
        "per_seed": runs,
    }
    result["table"] = span_quality_table(result)
    write_json(result, json_out)
    return result


def _service_run(
    items: Sequence[tuple[str, str]],
    pool: Sequence[tuple[str, str]],
    teacher_sets: Sequence[str],
    reviewed: np.ndarray[Any, np.dtype[np.int64]],
    labels: tuple[str, ...],
    train_tagger: TrainTagger,
    folder: Path,
    *,
    seed: int,
    epsilon: float,
    delta: float,
) -> dict[str, Any]:
    """The service's path for one seed: train on every human label, certify on its gold, accept above it."""
    gold = [label for _, label in items]
    human = [(f"pool-{i}", text, label, None) for i, (text, label) in enumerate(pool)]
    human += [(f"item-{i}", items[i][0], items[i][1], teacher_sets[i]) for i in reviewed.tolist()]
    rows = [
        TrainingRow(
            item_id=int(hashlib.sha256(key.encode()).hexdigest()[:12], 16),
            text=text,
            label=label,
            source="human",
            teacher_probs=None,
            teacher_label=proposed,
            template_sha=None,
            sampled=True,  # imported, or a proposal reviewed in random order: a uniform sample either way
        )
        for key, text, label, proposed in human
    ]
    plan = plan_training(rows, labels=None, seed=seed)
    predict = train_tagger(plan.train, seed, folder)
    on_gold = predict([row.text for row in plan.gold])
    right = [name == row.label for (name, _), row in zip(on_gold, plan.gold, strict=True)]
    certified = fit_student_threshold(
        confidences=[confidence for _, confidence in on_gold], correct=right, epsilon=epsilon, delta=delta
    )
    student_f1 = span_sets.entity_report(
        y_true=[row.label for row in plan.gold], y_pred=[name for name, _ in on_gold], labels=labels
    ).get("micro_f1", 0.0)
    judged = [row for row in plan.gold if row.teacher_label is not None]
    teacher_f1 = span_sets.entity_report(
        y_true=[row.label for row in judged], y_pred=[str(row.teacher_label) for row in judged], labels=labels
    ).get("micro_f1", 0.0)
    promoted = promotion_gate(student_f1, teacher_f1, PROMOTION_MARGIN)
    report = {"gate_metric": "micro_f1", "student": {"micro_f1": student_f1}, "teacher": {"micro_f1": teacher_f1}}
    keeps_own = promoted and not escalates("spans", {**report, "teacher_gold_examples": len(judged)})
    machine = list(teacher_sets)
    accepted = np.zeros(len(items), dtype=bool)
    if promoted:
        for index, (name, confidence) in enumerate(predict([text for text, _ in items])):
            if certified.threshold is not None and confidence >= certified.threshold:
                machine[index], accepted[index] = name, True
            elif keeps_own:
                machine[index] = name
    return {
        **_metrics(machine, gold, reviewed, accepted, labels, epsilon),
        "trained_on": len(plan.train),
        "gold_examples": len(plan.gold),
        "student_f1": student_f1,
        "threshold": certified.threshold,
        "error_bound": certified.error_bound,
        "promoted": promoted,
        "teacher_asked": promoted and not keeps_own,
    }


def _metrics(
    machine: Sequence[str],
    gold: Sequence[str],
    reviewed: np.ndarray[Any, np.dtype[np.int64]],
    accepted: np.ndarray[Any, np.dtype[np.bool_]],
    labels: tuple[str, ...],
    epsilon: float,
) -> dict[str, Any]:
    """Coverage and realised error of the accepted sets (reviewed items are never accepted), and the final sets'
    entity F1 and exact-set accuracy (the reviewer's where reviewed, else the machine's)."""
    final = list(machine)
    kept = accepted.copy()
    for index in reviewed.tolist():
        final[index], kept[index] = gold[index], False
    wrong = [final[i] != gold[i] for i in np.flatnonzero(kept).tolist()]
    error = float(np.mean(wrong)) if wrong else 0.0
    return {
        "coverage": float(kept.mean()),
        "realised_error": error,
        "within_epsilon": int(error <= epsilon),
        "final_f1": span_sets.entity_report(y_true=gold, y_pred=final, labels=labels).get("micro_f1", 0.0),
        "final_accuracy": float(np.mean([f == g for f, g in zip(final, gold, strict=True)])),
        "human_reviews": int(reviewed.size),
    }


def _summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    def mean(key: str) -> float:
        return float(np.mean([row[key] for row in rows]))

    keys = ("coverage", "realised_error", "final_f1", "final_accuracy", "human_reviews")
    summary = {key: mean(key) for key in keys}
    summary["share_within_epsilon"] = mean("within_epsilon")
    summary["certified_share"] = float(np.mean([row.get("threshold") is not None for row in rows]))
    if "student_f1" in rows[0]:
        summary["student_f1"] = mean("student_f1")
        summary["promoted_share"] = float(np.mean([row["promoted"] for row in rows]))
    return summary


def span_quality_table(result: dict[str, Any]) -> str:
    """A markdown table: per budget and method, coverage, realised error, seeds within epsilon and final F1."""
    lines = [
        f"{result['dataset']}: {result['n_items']} items, {result['labeled_before']} labeled before, "
        f"epsilon {result['epsilon']}, {result['seeds']} seeds; teacher alone entity F1 {result['teacher_f1']:.3f}",
        "",
        "| budget | method | coverage | realised error | seeds within ε | final entity F1 | final sets right |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key, budget in result["budgets"].items():
        for method in METHODS:
            row = budget[method]
            lines.append(
                f"| {key} ({budget['review_budget']}) | {method} | {row['coverage']:.1%} "
                f"| {row['realised_error']:.1%} | {row['share_within_epsilon']:.0%} | {row['final_f1']:.3f} "
                f"| {row['final_accuracy']:.1%} |"
            )
    return "\n".join(lines)


def cached_proposals(cache: Path, key: str, propose: Propose) -> Propose:
    """``propose`` with its answers kept in ``cache`` under ``key`` (the texts, pool and model decide them)."""

    def cached(texts: Sequence[str]) -> SpanSets:
        path = cache / f"spans-{key}.json"
        if path.exists():
            return [(str(name), float(confidence)) for name, confidence in json.loads(path.read_text())]
        answers = propose(texts)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(answers))
        return answers

    return cached


def proposals_key(texts: Sequence[str], pool: Sequence[tuple[str, str]], model: str, template: str) -> str:
    digest = hashlib.sha256(json.dumps([list(texts), [list(p) for p in pool], model, template]).encode())
    return digest.hexdigest()[:16]

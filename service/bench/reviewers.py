"""`understudy bench reviewers`: simulated reviewers of known accuracy answer a packaged data set, and the weighted
aggregate (the Dawid-Skene model the service fits, pipeline/reviewer_model.py) is scored against majority vote.

Each simulated reviewer gives the gold label with their accuracy and otherwise a wrong label drawn uniformly. Two
designs: every item answered by all reviewers, and every item answered by two drawn at random (as when a task
asks for two votes per audit). A share of the items is gold (their label known to the model, as gold items are in
the service), and accuracy is measured on the others."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from service.bench.report import write_json
from service.pipeline.reviewer_model import fit_reviewers, majority

DESIGNS = ("all_answer", "two_answer")


def simulate(
    *,
    truth: Sequence[str],
    labels: Sequence[str],
    accuracies: Mapping[str, float],
    design: str,
    gold_share: float,
    seed: int,
) -> dict[str, Any]:
    """One seed: answers, the fitted model, and the accuracy of each way to aggregate them."""
    rng = np.random.default_rng(seed)
    names = list(accuracies)
    votes: dict[int, dict[str, str]] = {}
    for item, right in enumerate(truth):
        chosen = names if design == "all_answer" else list(rng.choice(names, size=2, replace=False))
        answers = {}
        for reviewer in chosen:
            if rng.random() < accuracies[reviewer]:
                answers[reviewer] = right
            else:
                wrong = [label for label in labels if label != right]
                answers[reviewer] = wrong[int(rng.integers(len(wrong)))]
        votes[item] = answers
    gold_items = rng.random(len(truth)) < gold_share
    gold = {item: truth[item] for item in np.flatnonzero(gold_items).tolist()}
    model = fit_reviewers(votes=votes, labels=labels, gold=gold)
    scored = [item for item in votes if item not in gold]

    def accuracy(answer: Any) -> float:
        return float(np.mean([answer(votes[item]) == truth[item] for item in scored]))

    return {
        "majority_vote": accuracy(lambda answers: majority(answers, rng=rng)),
        "weighted": accuracy(lambda answers: model.aggregate(answers)[0]),
        "estimated_accuracy": {reviewer: model.accuracy(reviewer) for reviewer in names},
    }


def run_reviewers_bench(
    *,
    pairs: Sequence[tuple[str, str]],
    dataset: str,
    accuracies: Mapping[str, float],
    items: int,
    gold_share: float,
    seeds: int,
    json_out: Path | None,
) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    chosen = [pairs[i] for i in rng.permutation(len(pairs))[:items]]
    truth = [label for _, label in chosen]
    labels = sorted({label for _, label in pairs})
    designs: dict[str, Any] = {}
    for design in DESIGNS:
        runs = [
            simulate(truth=truth, labels=labels, accuracies=accuracies, design=design, gold_share=gold_share, seed=seed)
            for seed in range(seeds)
        ]
        majority_acc = [run["majority_vote"] for run in runs]
        weighted_acc = [run["weighted"] for run in runs]
        designs[design] = {
            "majority_vote": float(np.mean(majority_acc)),
            "weighted": float(np.mean(weighted_acc)),
            "margin": float(np.mean(weighted_acc) - np.mean(majority_acc)),
            "seeds_weighted_ahead": int(sum(w > m for w, m in zip(weighted_acc, majority_acc, strict=True))),
            "estimated_accuracy": {
                reviewer: float(np.mean([run["estimated_accuracy"][reviewer] for run in runs]))
                for reviewer in accuracies
            },
        }
    result: dict[str, Any] = {
        "dataset": dataset,
        "labels": labels,
        "items": len(truth),
        "gold_share": gold_share,
        "seeds": seeds,
        "reviewers": dict(accuracies),
        "designs": designs,
    }
    result["table"] = reviewers_table(result)
    write_json(result, json_out)
    return result


def reviewers_table(result: Mapping[str, Any]) -> str:
    reviewers = list(result["reviewers"])
    lines = [
        f"{result['dataset']}: {result['items']} items, {len(result['labels'])} labels, "
        f"{result['gold_share']:.0%} gold, {result['seeds']} seeds",
        "| answers per item | majority vote | weighted (Dawid-Skene) | margin | seeds ahead | estimated accuracy ("
        + ", ".join(f"true {result['reviewers'][r]:.2f}" for r in reviewers)
        + ") |",
        "|---|---|---|---|---|---|",
    ]
    for design, row in result["designs"].items():
        estimates = ", ".join(f"{row['estimated_accuracy'][r]:.3f}" for r in reviewers)
        answers = len(reviewers) if design == "all_answer" else 2
        lines.append(
            f"| {answers} | {row['majority_vote']:.2%} | {row['weighted']:.2%} | {row['margin'] * 100:+.2f} pts | "
            f"{row['seeds_weighted_ahead']}/{result['seeds']} | {estimates} |"
        )
    return "\n".join(lines)

"""The reviewer model (Dawid-Skene with a prior): accuracies it recovers, gold, and what it leaves out."""

from __future__ import annotations

import numpy as np
import pytest

from service.bench.reviewers import run_reviewers_bench
from service.pipeline.reviewer_model import fit_reviewers, majority

LABELS = ["a", "b", "c"]


def _answers(accuracies: dict[str, float], *, items: int, seed: int = 0) -> tuple[list[str], dict[int, dict[str, str]]]:
    rng = np.random.default_rng(seed)
    truth = [LABELS[int(k)] for k in rng.integers(len(LABELS), size=items)]
    votes: dict[int, dict[str, str]] = {}
    for item, right in enumerate(truth):
        votes[item] = {}
        for reviewer, accuracy in accuracies.items():
            wrong = [label for label in LABELS if label != right]
            votes[item][reviewer] = right if rng.random() < accuracy else wrong[int(rng.integers(2))]
    return truth, votes


def test_recovers_each_reviewers_accuracy_and_outweighs_the_majority() -> None:
    accuracies = {"careful": 0.95, "fair": 0.8, "careless": 0.55}
    truth, votes = _answers(accuracies, items=1500)
    model = fit_reviewers(votes=votes, labels=LABELS)
    for reviewer, accuracy in accuracies.items():
        assert model.accuracy(reviewer) == pytest.approx(accuracy, abs=0.03)
        assert model.evidence[reviewer] == 1500
    rng = np.random.default_rng(1)
    weighted = np.mean([model.aggregate(votes[i])[0] == truth[i] for i in votes])
    majority_vote = np.mean([majority(votes[i], rng=rng) == truth[i] for i in votes])
    assert weighted > majority_vote + 0.01
    # Two answers that disagree: the careful reviewer's wins, and the posterior says how sure.
    label, probability = model.aggregate({"careful": "a", "careless": "b"})
    assert label == "a" and 0.8 < probability < 1.0


def test_gold_anchors_a_reviewer_seen_only_on_gold_and_single_answers_teach_nothing() -> None:
    gold = {i: LABELS[i % 3] for i in range(40)}
    # Right on every "c" item and on every other one of the rest.
    votes: dict[int, dict[str, str]] = {i: {"wrong_half": "c" if i % 3 == 2 else LABELS[i % 3 + i % 2]} for i in gold}
    votes |= {100 + i: {"alone": "a"} for i in range(50)}  # answered once, not gold: no evidence about "alone"
    model = fit_reviewers(votes=votes, labels=LABELS, gold=gold)
    right = sum(votes[i]["wrong_half"] == gold[i] for i in gold) / len(gold)
    assert model.accuracy("wrong_half") == pytest.approx(right, abs=0.12)
    assert "alone" not in model.evidence
    prior_only = model.accuracy("alone")
    assert 0.5 < prior_only < 0.95  # the prior: better than chance, not perfect


def test_answers_outside_the_labels_and_empty_votes_are_harmless() -> None:
    empty = fit_reviewers(votes={}, labels=LABELS)
    assert empty.evidence == {} and empty.aggregate({"x": "b"})[0] == "b"
    model = fit_reviewers(votes={1: {"x": "a", "y": "retired"}, 2: {"x": "b", "y": "b"}}, labels=LABELS)
    assert model.evidence == {"x": 2, "y": 1}


def test_the_benchmark_reports_the_margin_per_design() -> None:
    pairs = [(f"text {i}", LABELS[i % 3]) for i in range(300)]
    result = run_reviewers_bench(
        pairs=pairs,
        dataset="toy",
        accuracies={"r95": 0.95, "r85": 0.85, "r70": 0.7},
        items=300,
        gold_share=0.05,
        seeds=3,
        json_out=None,
    )
    for design in ("all_answer", "two_answer"):
        row = result["designs"][design]
        assert row["margin"] == pytest.approx(row["weighted"] - row["majority_vote"])
        assert row["weighted"] > row["majority_vote"]
    assert "| 2 |" in result["table"]

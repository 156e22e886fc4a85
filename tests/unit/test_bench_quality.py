import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from service.bench.quality import cached_scores, content_key, quality_table, run_quality_bench
from service.bench.quality_sim import Pool, RunConfig, run_filter, simulate_reviewer
from service.errors import Invalid


class SyntheticTeacher:
    """Calibrated probabilities: each item's top label is right with exactly its stated confidence."""

    def __init__(self, gold: dict[str, int], k: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.rows: dict[str, np.ndarray] = {}
        self.embeddings: dict[str, np.ndarray] = {}
        centres = rng.normal(size=(k, 8))
        for text, label in gold.items():
            confidence = 1 - (1 - 1 / k) * rng.beta(0.5, 6)
            top = label if rng.random() < confidence else (label + rng.integers(1, k)) % k
            row = np.full(k, (1 - confidence) / (k - 1))
            row[top] = confidence
            self.rows[text] = row
            self.embeddings[text] = centres[label] + 0.7 * rng.normal(size=8)
        self.calls = 0

    def scores(self, texts: Sequence[str], labels: tuple[str, ...]) -> np.ndarray:
        self.calls += 1
        return np.stack([self.rows[text] for text in texts])

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self.embeddings[text] for text in texts])


def write_dataset(path: Path, n: int, k: int, seed: int) -> dict[str, int]:
    rng = np.random.default_rng(seed)
    gold = {f"item number {i}": int(rng.integers(k)) for i in range(n)}
    with path.open("w") as handle:
        for text, label in gold.items():
            handle.write(json.dumps({"body": text, "topic": f"topic-{label}"}) + "\n")
    return gold


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    tmp = tmp_path_factory.mktemp("bench")
    gold = write_dataset(tmp / "data.jsonl", 1500, 3, seed=1)
    teacher = SyntheticTeacher(gold, 3, seed=2)
    result = run_quality_bench(
        tmp / "data.jsonl",
        "body",
        "topic",
        teacher_scores=teacher.scores,
        embed=teacher.embed,
        review_budget=400,
        seeds=5,
        json_out=tmp / "quality.json",
        plot_out=tmp / "quality.png",
    )
    return result, tmp


def test_report_has_the_promised_keys_and_files(bench: tuple[dict, Path]) -> None:
    result, tmp = bench
    for key in ("accepted_accuracy", "coverage", "human_reviews", "error_bound", "final_accuracy"):
        assert key in result
    for baseline in ("accept_all", "random_review", "max_prob_threshold"):
        assert {"accepted_accuracy", "coverage", "human_reviews", "final_accuracy"} <= set(result[baseline])
    assert json.loads((tmp / "quality.json").read_text())["n_items"] == 1500
    assert (tmp / "quality.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result["table"].count("\n") == 5 and "max-prob ≥ 0.9" in result["table"]
    assert len(result["per_seed"]) == 5 and len(result["curve"]["filter"]) == 401


def test_every_method_stays_within_the_review_budget(bench: tuple[dict, Path]) -> None:
    result, _ = bench
    assert result["human_reviews"] <= 400
    assert result["random_review"]["human_reviews"] == 400
    assert result["max_prob_threshold"]["human_reviews"] <= 400
    assert result["accept_all"]["human_reviews"] == 0


def test_filter_keeps_its_error_bound_and_beats_the_baselines(bench: tuple[dict, Path]) -> None:
    result, _ = bench
    assert result["share_within_epsilon"] >= 1 - result["delta"]
    assert result["coverage"] > 0.3
    assert result["final_accuracy"] > result["random_review"]["final_accuracy"]
    assert result["final_accuracy"] > result["max_prob_threshold"]["final_accuracy"]
    assert result["accept_all"]["final_accuracy"] == pytest.approx(result["teacher_accuracy"])


def test_budget_below_the_cold_start_accepts_nothing(tmp_path: Path) -> None:
    gold = write_dataset(tmp_path / "data.jsonl", 300, 2, seed=3)
    teacher = SyntheticTeacher(gold, 2, seed=4)
    result = run_quality_bench(
        tmp_path / "data.jsonl", "body", "topic", teacher_scores=teacher.scores, review_budget=20, seeds=2
    )
    assert result["coverage"] == 0.0 and result["error_bound"] is None and result["certified_share"] == 0.0
    assert result["human_reviews"] == 20


def test_csv_input_and_bad_fields(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("text,label\n" + "".join(f"row {i},{'ab'[i % 2]}\n" for i in range(60)))
    rows = {f"row {i}": np.array([0.8, 0.2]) if i % 2 == 0 else np.array([0.3, 0.7]) for i in range(60)}
    result = run_quality_bench(
        path,
        "text",
        "label",
        teacher_scores=lambda texts, labels: np.stack([rows[t] for t in texts]),
        review_budget=10,
    )
    assert result["labels"] == ["a", "b"] and result["teacher_accuracy"] == 1.0
    with pytest.raises(Invalid, match="lacks field 'missing'"):
        run_quality_bench(
            path, "missing", "label", teacher_scores=lambda texts, labels: np.zeros((0, 2)), review_budget=5
        )


def test_reviewer_noise_flips_labels_at_the_given_rate() -> None:
    gold = np.zeros(20_000, dtype=np.int64)
    noisy = simulate_reviewer(gold, 3, 0.1, np.random.default_rng(0))
    assert (noisy != gold).mean() == pytest.approx(0.1, abs=0.01)
    assert set(np.unique(noisy)) == {0, 1, 2}
    assert (simulate_reviewer(gold, 3, 0.0, np.random.default_rng(0)) == gold).all()


def test_scores_are_cached_by_content(tmp_path: Path) -> None:
    calls = []

    def compute() -> np.ndarray:
        calls.append(1)
        return np.eye(2)

    key = content_key(["a", "b"], ["x", "y"], "model")
    assert key != content_key(["a", "c"], ["x", "y"], "model")
    first = cached_scores(tmp_path, key, compute)
    second = cached_scores(tmp_path, key, compute)
    assert len(calls) == 1 and (first == second).all()


def test_table_has_a_row_per_method_and_dataset() -> None:
    row = {
        "accepted_accuracy": 0.99,
        "coverage": 0.5,
        "human_reviews": 100,
        "error_bound": None,
        "realised_error": 0.01,
        "share_within_epsilon": 1.0,
        "final_accuracy": 0.95,
    }
    result = {
        "dataset": "d",
        **row,
        "accept_all": row,
        "random_review": row,
        "max_prob_threshold": {**row, "threshold": 0.9},
    }
    table = quality_table([result, {**result, "dataset": "e"}])
    assert table.count("| d |") == 4 and table.count("| e |") == 4 and "99.0%" in table


def test_the_filter_reviews_first_the_labels_the_probe_on_the_labeled_pool_contradicts() -> None:
    rng = np.random.default_rng(5)
    gold = np.repeat([0, 1], 100)
    embeddings = np.eye(8)[gold] + 0.05 * rng.normal(size=(200, 8))
    wrong = rng.choice(200, 20, replace=False)
    machine = gold.copy()
    machine[wrong] = 1 - machine[wrong]
    # Confidence alone cannot tell the 20 errors apart: it is drawn the same way for every item.
    confidence = rng.uniform(0.9, 0.99, size=(200, 1))
    probs = np.where(np.eye(2)[machine] == 1, confidence, 1 - confidence)
    labeled_gold = np.repeat([0, 1], 25)
    config = RunConfig(
        epsilon=0.05,
        delta=0.1,
        review_budget=20,
        reviewer_noise=0.0,
        audit_share=0.05,
        seed_reviews=20,
        calibration_share=0.3,
        baseline_threshold=0.9,
    )
    with_pool = Pool(
        probs=probs,
        gold=gold,
        embeddings=embeddings,
        density=np.full(200, 0.5),
        labeled_embeddings=np.eye(8)[labeled_gold] + 0.05 * rng.normal(size=(50, 8)),
        labeled_labels=labeled_gold,
    )
    outcome = run_filter(with_pool, config, np.random.default_rng(0), gold)
    assert set(outcome.review_order.tolist()) == set(wrong.tolist())
    assert (outcome.final == gold).all()
    without = run_filter(
        replace(with_pool, labeled_embeddings=None, labeled_labels=None), config, np.random.default_rng(0), gold
    )
    assert (without.final == gold).mean() < 0.95


def test_labeled_items_with_teacher_scores_calibrate_and_certify_without_spending_the_budget(tmp_path: Path) -> None:
    gold = write_dataset(tmp_path / "data.jsonl", 1200, 2, seed=6)
    teacher = SyntheticTeacher(gold, 2, seed=7)
    texts = list(gold)
    labeled = [(text, f"topic-{gold[text]}") for text in texts[600:]]
    (tmp_path / "eval.jsonl").write_text(
        "".join(json.dumps({"body": t, "topic": f"topic-{gold[t]}"}) + "\n" for t in texts[:600])
    )
    result = run_quality_bench(
        tmp_path / "eval.jsonl",
        "body",
        "topic",
        teacher_scores=teacher.scores,
        embed=teacher.embed,
        labeled=labeled,
        labeled_scores=lambda names: teacher.scores([t for t, _ in labeled], names),
        review_budget=50,
        seeds=10,
    )
    # 50 reviews alone certify nothing (see the cold-start test); 300 scored labeled items do.
    assert result["certified_share"] >= 0.9 and result["coverage"] > 0.5
    assert result["share_within_epsilon"] >= 1 - result["delta"]
    assert result["error_bound"] <= result["epsilon"]
    assert result["final_accuracy"] > result["max_prob_threshold"]["final_accuracy"]

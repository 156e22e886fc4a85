import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from service.bench.quality import METHODS, cached_scores, content_key, quality_table, run_quality_bench
from service.bench.quality_sim import Pool, RunConfig, simulate_reviewer
from service.bench.stacked_run import run_active_learning, run_certified, run_certified_lr
from service.errors import Invalid
from service.pipeline.certification import look_size
from service.pipeline.label_sets import set_probs


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


def labeled_split(gold: dict[str, int], teacher: SyntheticTeacher, tmp: Path, n_eval: int) -> dict:
    """The first n_eval items to label (written to eval.jsonl), the rest labeled before the run, with scores."""
    texts = list(gold)
    labeled = [(text, f"topic-{gold[text]}") for text in texts[n_eval:]]
    (tmp / "eval.jsonl").write_text(
        "".join(json.dumps({"body": t, "topic": f"topic-{gold[t]}"}) + "\n" for t in texts[:n_eval])
    )
    return {
        "labeled": labeled,
        "labeled_scores": lambda names: teacher.scores([t for t, _ in labeled], names),
        "embed": teacher.embed,
    }


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    tmp = tmp_path_factory.mktemp("bench")
    gold = write_dataset(tmp / "data.jsonl", 1400, 3, seed=1)
    teacher = SyntheticTeacher(gold, 3, seed=2)
    result = run_quality_bench(
        tmp / "eval.jsonl",
        "body",
        "topic",
        teacher_scores=teacher.scores,
        **labeled_split(gold, teacher, tmp, 1200),
        epsilon=0.1,
        seeds=5,
        json_out=tmp / "quality.json",
        plot_out=tmp / "quality.png",
    )
    return result, tmp


def test_report_has_the_promised_keys_and_files(bench: tuple[dict, Path]) -> None:
    result, tmp = bench
    assert list(result["budgets"]) == ["5%", "10%", "20%"]
    for rows in result["budgets"].values():
        for method in METHODS:
            assert {"coverage", "realised_error", "share_within_epsilon", "final_accuracy"} <= set(rows[method])
    assert json.loads((tmp / "quality.json").read_text())["n_items"] == 1200
    assert (tmp / "quality.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result["table"].count("\n") == 2 + 3 * len(METHODS) - 1 and "max-prob ≥ 0.9" in result["table"]
    assert len(result["per_seed"]["10%"]["stacked"]) == 5


def test_every_method_stays_within_the_review_budget(bench: tuple[dict, Path]) -> None:
    result, _ = bench
    for rows in result["budgets"].values():
        assert all(rows[method]["human_reviews"] <= rows["review_budget"] for method in METHODS)
        assert rows["random_review"]["human_reviews"] == rows["review_budget"]
        assert rows["active_learning"]["human_reviews"] == rows["review_budget"]


def test_stacked_labeler_keeps_its_bound_and_beats_every_baseline(bench: tuple[dict, Path]) -> None:
    result, _ = bench
    for rows in result["budgets"].values():
        stacked = rows["stacked"]
        assert stacked["share_within_epsilon"] >= 1 - result["delta"] and stacked["coverage"] > 0.5
        for method in ("teacher_alone", "random_review", "max_prob_threshold", "active_learning"):
            assert stacked["final_accuracy"] >= rows[method]["final_accuracy"], method


def test_without_embeddings_only_the_teacher_methods_run(tmp_path: Path) -> None:
    gold = write_dataset(tmp_path / "data.jsonl", 300, 2, seed=3)
    teacher = SyntheticTeacher(gold, 2, seed=4)
    result = run_quality_bench(
        tmp_path / "data.jsonl", "body", "topic", teacher_scores=teacher.scores, budget_shares=(0.05,), seeds=2
    )
    rows = result["budgets"]["5%"]
    assert "stacked" not in rows and "active_learning" not in rows
    # 15 reviews, half of them to certify: too few to certify anything, so nothing is accepted.
    assert rows["teacher_alone"]["coverage"] == 0.0 and rows["teacher_alone"]["certified_share"] == 0.0


def test_csv_input_and_bad_fields(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("text,label\n" + "".join(f"row {i},{'ab'[i % 2]}\n" for i in range(60)))
    rows = {f"row {i}": np.array([0.8, 0.2]) if i % 2 == 0 else np.array([0.3, 0.7]) for i in range(60)}
    result = run_quality_bench(
        path,
        "text",
        "label",
        teacher_scores=lambda texts, labels: np.stack([rows[t] for t in texts]),
        budget_shares=(0.2,),
    )
    assert result["labels"] == ["a", "b"] and result["teacher_accuracy"] == 1.0
    with pytest.raises(Invalid, match="lacks field 'missing'"):
        run_quality_bench(path, "missing", "label", teacher_scores=lambda texts, labels: np.zeros((0, 2)))


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


def test_table_has_a_row_per_budget_method_and_dataset() -> None:
    row = {
        "accepted_accuracy": 0.99,
        "coverage": 0.5,
        "error_bound": None,
        "realised_error": 0.01,
        "share_within_epsilon": 1.0,
        "final_accuracy": 0.95,
    }
    budgets = {"10%": {"review_budget": 100, **{method: row for method in METHODS}}}
    result = {"dataset": "d", "max_prob_threshold": 0.9, "budgets": budgets}
    table = quality_table([result, {**result, "dataset": "e"}])
    assert table.count("| d | 10% (100) |") == len(METHODS) and table.count("| e |") == len(METHODS)
    assert "99.0%" in table


def _pool(teacher_probs: np.ndarray, gold: np.ndarray, rng: np.random.Generator, labeled: int) -> Pool:
    """Embeddings that carry the label (a probe learns it), and a labeled pool of ``labeled`` items."""
    embeddings = np.eye(4)[gold] + 0.3 * rng.normal(size=(gold.size, 4))
    known = rng.integers(0, 2, labeled)
    known_probs = teacher_probs[rng.integers(0, gold.size, labeled)]  # scored like the items to label
    return Pool(
        probs=teacher_probs,
        gold=gold,
        embeddings=embeddings,
        density=np.full(gold.size, 0.5),
        labeled_embeddings=np.eye(4)[known] + 0.3 * rng.normal(size=(labeled, 4)),
        labeled_labels=known,
        labeled_probs=known_probs,
    )


CONFIG = RunConfig(
    epsilon=0.1,
    delta=0.1,
    review_budget=40,
    reviewer_noise=0.0,
    audit_share=0.05,
    target_coverage=None,
    min_reviews=30,
    baseline_threshold=0.9,
)


FIRST_LOOK = look_size(0, epsilon=0.1, delta=0.1, min_reviews=30, target_coverage=None)


def test_a_useless_teacher_is_outweighed_by_the_probe() -> None:
    rng = np.random.default_rng(5)
    gold = rng.integers(0, 2, 600)
    coin = rng.dirichlet([1, 1], 600)  # the teacher knows nothing
    pool = _pool(coin, gold, rng, labeled=200)
    config = replace_budget(FIRST_LOOK + 20)
    stacked = run_certified(pool, config, np.random.default_rng(0), gold, sources=("teacher", "probe"))
    alone = run_certified(pool, config, np.random.default_rng(0), gold, sources=("teacher",))
    assert (stacked.final == gold).mean() > 0.95 > 0.7 > (alone.final == gold).mean()
    assert stacked.accepted.mean() > 0.5, "the first candidate, fitted on the labeled pool, certifies on its slice"
    assert stacked.cold_start_reviews == FIRST_LOOK, "cold start ends at the certified look"
    assert (stacked.machine[stacked.accepted] == gold[stacked.accepted]).mean() >= 0.9


def test_a_look_tests_the_candidate_on_labels_it_never_saw() -> None:
    """The reviewer contradicts the labeled pool on every item: a candidate fitted on the pool and tested on the
    reviews labeled after it finds itself wrong there and certifies nothing (one that had seen them would not)."""
    rng = np.random.default_rng(6)
    gold = rng.integers(0, 2, 400)
    pool = _pool(rng.dirichlet([1, 1], 400), gold, rng, labeled=200)
    config = replace_budget(FIRST_LOOK)
    outcome = run_certified(pool, config, np.random.default_rng(0), 1 - gold, sources=("teacher", "probe"))
    assert outcome.cold_start_reviews == FIRST_LOOK, "the look happened"
    assert outcome.error_bound is None and not outcome.accepted.any()


def replace_budget(budget: int) -> RunConfig:
    return RunConfig(**{**CONFIG.__dict__, "review_budget": budget})


def test_active_learning_uses_no_teacher_and_reviews_what_it_is_unsure_of() -> None:
    rng = np.random.default_rng(7)
    gold = rng.integers(0, 2, 300)
    pool = _pool(rng.dirichlet([1, 1], 300), gold, rng, labeled=20)
    other_teacher = replace(pool, probs=rng.dirichlet([1, 1], 300))
    first = run_active_learning(pool, CONFIG, np.random.default_rng(1), gold)
    second = run_active_learning(other_teacher, CONFIG, np.random.default_rng(1), gold)
    assert (first.final == second.final).all() and first.review_order.size == 40
    assert (first.final == gold).mean() > 0.9


def test_cold_start_stops_when_nothing_certifiable_is_in_reach_within_the_budget() -> None:
    rng = np.random.default_rng(8)
    gold = rng.integers(0, 2, 500)
    pool = _pool(rng.dirichlet([1, 1], 500), gold, rng, labeled=200)
    budget = 3 * FIRST_LOOK
    aiming = RunConfig(**{**replace_budget(budget).__dict__, "target_coverage": 0.6})
    # The teacher alone knows nothing: judged on the labeled pool, it errs half the time at every confidence, so
    # no slice floor exists and no look could certify anything, with a target or without one.
    for config in (aiming, replace_budget(budget)):
        stopped = run_certified(pool, config, np.random.default_rng(0), gold, sources=("teacher",))
        assert stopped.cold_start_reviews == 0 and stopped.review_order.size == budget
    reaching = run_certified(pool, aiming, np.random.default_rng(0), gold, sources=("teacher", "probe"))
    assert reaching.cold_start_reviews > 0 and reaching.accepted.mean() >= 0.5, "the probe can reach it: draws go on"
    probe = ("teacher", "probe")
    short = run_certified(pool, replace_budget(FIRST_LOOK - 1), np.random.default_rng(0), gold, sources=probe)
    assert short.cold_start_reviews == FIRST_LOOK - 1, "the only look the budget pays for: a smaller one, all delta"
    assert short.error_bound is not None
    unaffordable = run_certified(pool, replace_budget(29), np.random.default_rng(0), gold, sources=probe)
    assert unaffordable.cold_start_reviews == 0, "a look below min_reviews is not worth a single uniform draw"


def test_a_slice_is_drawn_only_above_the_candidates_floor() -> None:
    """A teacher sure and right on a third of the items (confidence 0.95) and at chance elsewhere (0.5 to 0.7):
    items below the candidate's floor are passed over, not reviewed, and the look certifies what lies above it."""
    rng = np.random.default_rng(10)
    n = 900
    gold = rng.integers(0, 2, n)
    sure = rng.random(n) < 0.35
    unsure = rng.uniform(0.3, 0.7, n)
    teacher = np.where(sure[:, None], np.eye(2)[gold] * 0.9 + 0.05, np.stack([unsure, 1 - unsure], axis=1))
    pool = Pool(
        probs=teacher,
        gold=gold,
        embeddings=None,
        density=np.full(n, 0.5),
        labeled_embeddings=None,
        labeled_labels=gold[:300],
        labeled_probs=teacher[:300],
    )
    config = RunConfig(**{**replace_budget(120).__dict__, "target_coverage": 0.3})
    outcome = run_certified(pool, config, np.random.default_rng(0), gold, sources=("teacher",))
    uniform = outcome.review_order[: outcome.cold_start_reviews]
    assert outcome.cold_start_reviews > 0 and outcome.error_bound is not None
    # The floor sits where the cross-fitted error above it would reach epsilon: below the sure items, among the
    # most confident unsure ones; everything under it was passed over.
    assert teacher[uniform].max(axis=1).min() > 0.6 and sure[uniform].mean() > 0.6 > 0.35 + 0.1
    accepted = outcome.accepted
    assert 0.2 < accepted.mean() <= 0.4 and (outcome.machine[accepted] == gold[accepted]).mean() > 0.95


def test_the_certified_lr_peer_spends_the_budget_uniformly_and_certifies_on_it() -> None:
    rng = np.random.default_rng(9)
    gold = rng.integers(0, 2, 500)
    pool = _pool(rng.dirichlet([1, 1], 500), gold, rng, labeled=100)
    peer = run_certified_lr(pool, CONFIG, np.random.default_rng(0), gold)
    assert peer.review_order.size == CONFIG.review_budget == peer.cold_start_reviews
    assert not peer.accepted[peer.review_order].any(), "a reviewed item is not a machine label"
    assert peer.error_bound is not None and peer.error_bound <= CONFIG.epsilon and peer.accepted.mean() > 0.8
    blind = replace(pool, embeddings=rng.normal(size=(500, 4)))
    assert not run_certified_lr(blind, CONFIG, np.random.default_rng(0), gold).accepted.any()


def test_multi_label_runs_on_label_sets_and_reports_micro_f1(tmp_path: Path) -> None:
    """Three labels, each present when one embedding direction is positive; a teacher right about each label nine
    times in ten. Each run works on the 8 label sets: an item is right only when its whole set is."""
    rng = np.random.default_rng(5)
    labels = ("anger", "joy", "sadness")
    n = 700
    x = rng.normal(size=(n, 8))
    present = x[:, :3] > 0
    texts = [f"comment {i}" for i in range(n)]
    (tmp_path / "data.jsonl").write_text(
        "".join(
            json.dumps({"text": t, "labels": [name for name, on in zip(labels, row, strict=True) if on]}) + "\n"
            for t, row in zip(texts[:600], present, strict=False)
        )
    )
    calls = np.where(rng.random((n, 3)) < 0.9, present, ~present)
    teacher = {t: set_probs(np.where(c, 0.85, 0.15)[None, :])[0] for t, c in zip(texts, calls, strict=True)}
    embedding = dict(zip(texts, x, strict=True))
    seen: list[tuple[str, ...]] = []

    def scores(items: Sequence[str], task_labels: tuple[str, ...]) -> np.ndarray:
        seen.append(task_labels)
        return np.stack([teacher[t] for t in items])

    labeled = [
        (t, json.dumps([name for name, on in zip(labels, row, strict=True) if on]))
        for t, row in zip(texts[600:], present[600:], strict=True)
    ]
    result = run_quality_bench(
        tmp_path / "data.jsonl",
        "text",
        "labels",
        teacher_scores=scores,
        kind="multi_label",
        labeled=labeled,
        labeled_scores=lambda task_labels: scores([t for t, _ in labeled], task_labels),
        embed=lambda items: np.stack([embedding[t] for t in items]),
        budget_shares=(0.1,),
        epsilon=0.1,
        seeds=3,
    )
    assert seen == [labels, labels] and result["task_labels"] == list(labels) and len(result["labels"]) == 8
    assert result["labeled_before"] == 100
    # 0.9^3: the teacher's whole set is right about 73% of the time, each label 90%.
    assert 0.65 < result["teacher_accuracy"] < 0.8 and 0.85 < result["teacher_f1"] < 0.95
    rows = result["budgets"]["10%"]
    for method in METHODS:
        assert 0.0 <= rows[method]["final_f1"] <= 1.0
        assert rows[method]["human_reviews"] <= rows["review_budget"]
    # The one-vs-rest probe learns the directions: stacked beats the teacher it started from on whole sets.
    assert rows["stacked"]["final_accuracy"] > result["teacher_accuracy"] + 0.1
    assert rows["stacked"]["final_f1"] > rows["random_review"]["final_f1"]
    assert "final micro-F1" in result["table"]

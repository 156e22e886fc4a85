import numpy as np
import pytest

from service.pipeline.stacking import Stack, candidates, cross_fitted, fit_stack, fit_weights


def _sources(n: int, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """A useless teacher (uniform noise) and an informative probe (right 90% of the time, confident)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    teacher = rng.dirichlet([1, 1, 1], n)
    right = rng.random(n) < 0.9
    guess = np.where(right, y, (y + 1) % 3)
    probe = np.full((n, 3), 0.05)
    probe[np.arange(n), guess] = 0.9
    return {"teacher": teacher, "probe": probe}, y


def test_the_source_that_knows_the_task_carries_the_weight() -> None:
    inputs, y = _sources(300)
    stack = fit_stack(inputs=inputs, labels=y)
    assert "probe" in stack.sources and stack.cv_log_loss is not None
    if "teacher" in stack.sources:
        assert stack.weights[stack.sources.index("probe")] > 5 * stack.weights[stack.sources.index("teacher")]
    probs = stack.apply(inputs)
    assert probs.shape == (300, 3) and np.allclose(probs.sum(axis=1), 1.0)
    assert (probs.argmax(axis=1) == y).mean() > 0.85


def test_a_stack_needs_every_source_it_was_fitted_on() -> None:
    stack = Stack(sources=("teacher", "probe"), weights=(1.0, 1.0), bias=(0.0, 0.0))
    with pytest.raises(ValueError, match="needs probe"):
        stack.apply({"teacher": np.array([[0.5, 0.5]])})


def test_one_source_stack_keeps_the_top_label_without_bias() -> None:
    inputs, _ = _sources(200)
    top = inputs["teacher"].argmax(axis=1)
    teacher = {"teacher": inputs["teacher"][top < 2]}  # the teacher is always right, and label 2 is never seen
    stack = fit_weights(inputs=teacher, labels=top[top < 2], sources=("teacher",))
    assert stack.bias == (0.0, 0.0, 0.0), "a bias needs every label reviewed"
    assert stack.weights[0] > 1.0, "a teacher that is always right is sharpened"
    assert (stack.apply(inputs).argmax(axis=1) == top).all()


def test_candidates_are_each_source_and_all_together() -> None:
    assert candidates(["probe", "teacher"]) == [("teacher",), ("probe",), ("teacher", "probe")]
    assert candidates(["teacher"]) == [("teacher",)]


def test_cross_fitted_scores_each_item_without_its_fold() -> None:
    seen: list[set[int]] = []

    def fit(train: np.ndarray):  # type: ignore[no-untyped-def]
        seen.append(set(train.tolist()))
        return lambda rows: np.tile([0.25, 0.75], (rows.size, 1))

    probs = cross_fitted(fit=fit, n=12, k=2, folds=4)
    assert probs.shape == (12, 2) and all(len(s) == 9 for s in seen)
    assert all(not ({i for i in range(12) if i % 4 == f} & s) for f, s in enumerate(seen))

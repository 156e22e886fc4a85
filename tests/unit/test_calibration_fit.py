import numpy as np
import pytest

from service.pipeline.calibration import (
    Calibration,
    apply_temperature,
    fit_calibration,
    fit_temperature,
)


def overconfident_sample(rng: np.random.Generator, n: int, true_t: float) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose true label distribution is softmax(logits / true_t)."""
    logits = rng.normal(scale=3.0, size=(n, 3))
    probs = apply_temperature(logits_or_logprobs=logits, temperature=true_t)
    labels = np.array([rng.choice(3, p=row) for row in probs])
    return logits, labels


def test_fit_temperature_recovers_the_generating_temperature() -> None:
    logits, labels = overconfident_sample(np.random.default_rng(1), 3000, true_t=2.5)
    assert fit_temperature(logits_or_logprobs=logits, labels=labels) == pytest.approx(2.5, rel=0.15)


def test_no_reviews_leaves_scores_unchanged() -> None:
    assert fit_temperature(logits_or_logprobs=np.empty((0, 2)), labels=[]) == 1.0
    assert fit_calibration(logits_or_logprobs=np.empty((0, 2)), labels=[]) == Calibration()


def test_temperature_keeps_the_top_label_and_rows_sum_to_one() -> None:
    logits = np.array([[-0.1, -2.3], [-3.0, -0.05], [-1.0, -1.0]])
    probs = apply_temperature(logits_or_logprobs=logits, temperature=3.0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert probs.argmax(axis=1).tolist() == logits.argmax(axis=1).tolist()


def test_unscorable_label_stays_impossible_without_nan() -> None:
    probs = apply_temperature(logits_or_logprobs=[[-1.0, -np.inf]], temperature=2.0)
    assert np.isfinite(probs).all() and probs[0, 1] < 1e-100


def test_bias_corrects_a_teacher_that_prefers_one_label() -> None:
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 600)
    # Informative scores shifted by +2 towards label 1, as a small model's love for one label string.
    logits = np.stack([np.where(labels == 0, 1.0, -1.0), np.where(labels == 1, 1.0, -1.0) + 2.0], axis=1)
    logits = logits + rng.normal(scale=1.0, size=logits.shape)
    calibration = fit_calibration(logits_or_logprobs=logits, labels=labels)
    raw_accuracy = (logits.argmax(axis=1) == labels).mean()
    calibrated_accuracy = (calibration.apply(logits).argmax(axis=1) == labels).mean()
    assert calibrated_accuracy > raw_accuracy + 0.15
    assert calibration.bias[0] == 0.0 and calibration.bias[1] < -1.0 and calibration.fitted_on == 600


def test_bias_waits_until_every_label_was_reviewed() -> None:
    calibration = fit_calibration(logits_or_logprobs=[[0.0, 1.0], [0.2, 1.5]], labels=[1, 1])
    assert calibration.bias == () and calibration.fitted_on == 2


def test_bad_labels_are_rejected() -> None:
    with pytest.raises(ValueError):
        fit_temperature(logits_or_logprobs=[[0.0, 1.0]], labels=[2])

from __future__ import annotations

import numpy as np
import pytest

from service.bench.teacher import content_free_prior
from service.pipeline.calibration import batch_calibrate, batch_prior, fitted_prior, normalize


def test_normalize_is_a_softmax_per_row() -> None:
    probs = normalize(np.array([[0.0, np.log(3.0)], [-1000.0, -1000.0]]))
    np.testing.assert_allclose(probs, [[0.25, 0.75], [0.5, 0.5]])


def test_normalize_survives_very_negative_and_infinite_logliks() -> None:
    probs = normalize(np.array([[-1e6, -1e6 - np.log(4.0)], [-np.inf, -np.inf], [-np.inf, 0.0]]))
    np.testing.assert_allclose(probs, [[0.8, 0.2], [0.5, 0.5], [0.0, 1.0]])


def test_batch_prior_is_the_mean_distribution() -> None:
    np.testing.assert_allclose(batch_prior(np.array([[0.9, 0.1], [0.7, 0.3]])), [0.8, 0.2])
    with pytest.raises(ValueError):
        batch_prior(np.zeros((0, 2)))


def test_batch_calibration_removes_a_constant_bias() -> None:
    # A teacher that always leans 4:1 to label 0 ranks the items right but labels all of them 0.
    true = np.array([[0.3, 0.7], [0.6, 0.4], [0.2, 0.8], [0.9, 0.1]])
    biased = true * np.array([4.0, 1.0])
    biased /= biased.sum(axis=1, keepdims=True)
    assert (biased.argmax(axis=1) == 0).all()
    calibrated = batch_calibrate(biased, batch_prior(biased))
    np.testing.assert_allclose(calibrated.sum(axis=1), 1.0)
    assert calibrated.argmax(axis=1).tolist() == true.argmax(axis=1).tolist()


def test_batch_calibrate_with_a_uniform_prior_changes_nothing() -> None:
    probs = np.array([[0.2, 0.5, 0.3]])
    np.testing.assert_allclose(batch_calibrate(probs, np.full(3, 1 / 3)), probs)


def test_batch_calibrate_checks_the_prior_shape_and_zero_priors() -> None:
    with pytest.raises(ValueError, match="shape"):
        batch_calibrate(np.array([[0.5, 0.5]]), np.array([1.0, 0.0, 0.0]))
    calibrated = batch_calibrate(np.array([[0.0, 1.0]]), np.array([0.0, 1.0]))
    assert np.isfinite(calibrated).all()
    np.testing.assert_allclose(calibrated, [[0.0, 1.0]])


def test_content_free_prior_averages_the_placeholder_predictions() -> None:
    prior = content_free_prior(np.array([[0.0, 0.0], [np.log(3.0), 0.0]]))
    np.testing.assert_allclose(prior, [0.625, 0.375])


def test_fitted_prior_recovers_a_teachers_bias_from_labeled_items() -> None:
    rng = np.random.default_rng(0)
    true = rng.dirichlet([0.5, 0.5, 0.5], size=4000)
    gold = np.array([rng.choice(3, p=row) for row in true])
    biased = true * np.array([6.0, 3.0, 1.0])
    biased /= biased.sum(axis=1, keepdims=True)
    prior = fitted_prior(biased, gold, l2=0.0)
    np.testing.assert_allclose(prior, [0.6, 0.3, 0.1], atol=0.03)
    calibrated = batch_calibrate(biased, prior)
    assert np.mean(calibrated.argmax(axis=1) == gold) > np.mean(biased.argmax(axis=1) == gold) + 0.05


def test_fitted_prior_stays_finite_for_a_label_never_seen() -> None:
    prior = fitted_prior(np.array([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1]]), np.array([0, 1]))
    assert np.isfinite(prior).all() and (prior > 0).all()
    assert prior.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="gold"):
        fitted_prior(np.array([[0.5, 0.5]]), np.array([0, 1]))

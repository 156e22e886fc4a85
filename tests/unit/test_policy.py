import numpy as np
import pytest

from service.pipeline.policy import (
    clopper_pearson_upper,
    fit_policy,
    hypergeometric_upper,
    min_certifiable,
    quality_summary,
)


def calibrated_sample(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Confidences skewed towards 1, each label correct with exactly its confidence."""
    confidence = 1.0 - 0.5 * rng.beta(1.0, 6.0, n)
    return confidence, rng.random(n) < confidence


def test_clopper_pearson_matches_closed_form_for_zero_errors() -> None:
    # With no errors the one-sided bound solves (1 - p)^n = delta.
    assert clopper_pearson_upper(errors=0, n=50, delta=0.1) == pytest.approx(1 - 0.1 ** (1 / 50))
    assert clopper_pearson_upper(errors=0, n=0, delta=0.1) == 1.0
    assert clopper_pearson_upper(errors=5, n=5, delta=0.1) == 1.0


def test_min_certifiable_is_the_smallest_all_correct_sample() -> None:
    n = min_certifiable(epsilon=0.05, delta=0.1)
    assert 0.95**n <= 0.1 < 0.95 ** (n - 1)


def test_too_few_reviews_is_cold_start() -> None:
    policy = fit_policy(confidences=[0.99] * 29, correct=[True] * 29, min_reviews=30)
    assert policy.threshold is None and policy.cold_start
    assert policy.error_bound is None and policy.fitted_on == 29


def test_perfect_confident_reviews_certify_a_threshold_within_epsilon() -> None:
    confidences = np.linspace(0.6, 1.0, 400)
    policy = fit_policy(confidences=confidences, correct=np.ones(400, bool), epsilon=0.05, delta=0.1)
    assert policy.threshold is not None and policy.threshold <= 0.61
    assert policy.error_bound is not None and policy.error_bound <= 0.05
    assert policy.fitted_on == 400


def test_no_threshold_below_the_floor_is_tested() -> None:
    """Reviews drawn only at or above a floor of 0.8 sample nothing below it: however clean, no lower threshold."""
    confidences = np.linspace(0.6, 1.0, 400)
    floored = fit_policy(confidences=confidences, correct=np.ones(400, bool), epsilon=0.05, delta=0.1, floor=0.8)
    assert floored.threshold is not None and 0.8 <= floored.threshold <= 0.81


def test_no_threshold_when_errors_are_everywhere() -> None:
    rng = np.random.default_rng(0)
    policy = fit_policy(confidences=rng.uniform(0.5, 1, 500), correct=rng.random(500) < 0.8)
    assert policy.threshold is None


def test_threshold_stops_above_the_errors() -> None:
    # Confident items are all right; below 0.8 half are wrong, so the threshold must stay above 0.8.
    confidences = np.concatenate([np.linspace(0.8, 1.0, 300), np.linspace(0.5, 0.79, 300)])
    correct = np.concatenate([np.ones(300, bool), np.arange(300) % 2 == 0])
    policy = fit_policy(confidences=confidences, correct=correct, epsilon=0.05, delta=0.1)
    assert policy.threshold is not None and 0.7 < policy.threshold <= 0.82
    accepted = confidences >= policy.threshold
    assert 1 - correct[accepted].mean() <= 0.05


def test_vetoed_items_do_not_count_as_accepted() -> None:
    confidences = np.full(200, 0.99)
    correct = np.ones(200, bool)
    vetoed = np.ones(200, bool)
    assert fit_policy(confidences=confidences, correct=correct, vetoed=vetoed).threshold is None
    vetoed[:150] = False
    assert fit_policy(confidences=confidences, correct=correct, vetoed=vetoed).threshold is not None


def test_rejects_bad_shapes_and_levels() -> None:
    with pytest.raises(ValueError):
        fit_policy(confidences=[0.9, 0.8], correct=[True])
    with pytest.raises(ValueError):
        fit_policy(confidences=[0.9], correct=[True], epsilon=0.0)


def test_realised_error_within_epsilon_in_at_least_one_minus_delta_of_runs() -> None:
    """The guarantee itself, on synthetic calibrated data: 300 seeded runs of 400 reviews each."""
    epsilon, delta, runs = 0.05, 0.1, 300
    rng = np.random.default_rng(20261123)
    violations = certified = 0
    for _ in range(runs):
        confidences, correct = calibrated_sample(rng, 400)
        policy = fit_policy(confidences=confidences, correct=correct, epsilon=epsilon, delta=delta)
        if policy.threshold is None:
            continue
        certified += 1
        new_conf, new_correct = calibrated_sample(rng, 20_000)
        accepted = new_conf >= policy.threshold
        violations += bool(1 - new_correct[accepted].mean() > epsilon)
    assert violations / runs <= delta
    # And the procedure is not vacuous: most runs certify something.
    assert certified / runs >= 0.5


def test_quality_summary_reports_bound_audit_error_and_coverage() -> None:
    policy = fit_policy(confidences=np.linspace(0.6, 1, 400), correct=np.ones(400, bool))
    summary = quality_summary(
        policy=policy, audit_correct=[True] * 19 + [False], accepted=800, total=1000, human_reviews=450
    )
    assert summary.audit_reviews == 20 and summary.audit_errors == 1
    assert summary.audit_error == pytest.approx(0.05)
    assert summary.audit_error_upper is not None and summary.audit_error_upper > 0.05
    assert summary.coverage == pytest.approx(0.8)
    assert summary.error_bound == policy.error_bound and summary.human_reviews == 450
    empty = quality_summary(policy=policy, audit_correct=[], accepted=0, total=0, human_reviews=0)
    assert empty.audit_error is None and empty.coverage == 0.0


def test_hypergeometric_bound_covers_the_realised_error_of_the_unreviewed_items() -> None:
    rng = np.random.default_rng(3)
    wrong = np.zeros(400, dtype=bool)
    wrong[:14] = True
    covered = 0
    for _ in range(2000):
        order = rng.permutation(400)
        reviewed, pool = wrong[order[:200]], wrong[order[200:]]
        bound = hypergeometric_upper(errors=int(reviewed.sum()), n=200, n_pool=200, delta=0.1)
        covered += pool.mean() <= bound
    assert covered / 2000 >= 0.9
    assert hypergeometric_upper(errors=2, n=200, n_pool=0, delta=0.1) == 0.0
    # Against a huge pool its own sampling noise vanishes and it approaches Clopper-Pearson.
    huge = hypergeometric_upper(errors=2, n=200, n_pool=200_000, delta=0.1)
    assert huge == pytest.approx(clopper_pearson_upper(errors=2, n=200, delta=0.1), rel=0.02)


def test_realised_error_of_a_known_pool_within_epsilon_in_at_least_one_minus_delta_of_runs() -> None:
    """The pool-aware (hypergeometric) variant: the bound is on exactly the pool items it accepts."""
    epsilon, delta, runs = 0.05, 0.1, 300
    rng = np.random.default_rng(7)
    violations = certified = 0
    for _ in range(runs):
        confidences, correct = calibrated_sample(rng, 1500)
        reviewed = rng.choice(1500, 300, replace=False)
        pool = np.setdiff1d(np.arange(1500), reviewed)
        policy = fit_policy(
            confidences=confidences[reviewed],
            correct=correct[reviewed],
            pool_confidences=confidences[pool],
            epsilon=epsilon,
            delta=delta,
        )
        if policy.threshold is None:
            continue
        certified += 1
        assert policy.error_bound is not None and policy.error_bound <= epsilon
        accepted = pool[confidences[pool] >= policy.threshold]
        violations += bool(1 - correct[accepted].mean() > epsilon)
    assert violations / runs <= delta
    assert certified / runs >= 0.5

import numpy as np

from service.pipeline.certification import expected_reviews, look_delta, look_size
from service.pipeline.policy import min_certifiable


def test_looks_spend_at_most_delta_in_all_and_double_in_size() -> None:
    assert sum(look_delta(j, delta=0.1) for j in range(60)) <= 0.1
    first = look_size(0, epsilon=0.05, delta=0.1, min_reviews=30, target_coverage=0.6)
    assert min_certifiable(epsilon=0.05, delta=0.05) == 59
    assert first == 99, "the fewest reviews whose 60%, all correct, certify 0.05 at the first look's level"
    assert look_size(3, epsilon=0.05, delta=0.1, min_reviews=30, target_coverage=0.6) == 8 * first
    assert look_size(0, epsilon=0.05, delta=0.1, min_reviews=30, target_coverage=None) == 118, "half by default"
    assert look_size(0, epsilon=0.3, delta=0.1, min_reviews=30, target_coverage=1.0) == 30, "never below min_reviews"


def test_expected_reviews_grow_with_the_error_and_the_target() -> None:
    """A clean labeler needs fewer reviews for a larger coverage (more accepted items per review), until the
    coverage reaches where it errs."""
    rng = np.random.default_rng(0)
    confidences = rng.uniform(0.5, 1.0, 400)
    clean = confidences > 0.6  # wrong only below 0.6
    common = {"epsilon": 0.1, "delta": 0.1, "min_reviews": 30, "next_look": 0}
    low = expected_reviews(confidences=confidences, correct=clean, target_coverage=0.5, **common)
    high = expected_reviews(confidences=confidences, correct=clean, target_coverage=0.75, **common)
    assert low is not None and high is not None and high <= low
    into_errors = expected_reviews(confidences=confidences, correct=clean, target_coverage=0.95, **common)
    assert into_errors is None or into_errors > high
    assert low == look_size(0, epsilon=0.1, delta=0.1, min_reviews=30, target_coverage=0.5) or low > 2 * 29
    noisy = clean & (rng.random(400) > 0.05)
    assert (expected_reviews(confidences=confidences, correct=noisy, target_coverage=0.5, **common) or 0) >= low
    hopeless = rng.random(400) > 0.2  # 20% wrong everywhere: no threshold reaches epsilon 0.1
    assert expected_reviews(confidences=confidences, correct=hopeless, target_coverage=0.5, **common) is None

import numpy as np

from service.pipeline.certification import expected_reviews, first_fit, look_delta, look_size, plan_look, slice_floor
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


SIZED = {"epsilon": 0.1, "delta": 0.1, "min_reviews": 30, "target_coverage": None}
"""Looks of 58, 116, 232 ... reviews."""


def test_a_look_takes_half_of_delta_left_while_the_budget_pays_for_the_next() -> None:
    spent = 0.0
    for look in range(5):
        plan = plan_look(look, spent=spent, reviews_left=None, **SIZED)
        assert plan is not None and plan.size == look_size(look, **SIZED)
        assert abs(plan.level - look_delta(look, delta=0.1)) < 1e-12
        spent += plan.level
    roomy = plan_look(0, spent=0.0, reviews_left=58 + 116, **SIZED)
    assert roomy is not None and (roomy.size, roomy.level) == (58, 0.05)


def test_the_last_look_the_budget_pays_for_takes_all_delta_left_on_what_the_budget_has() -> None:
    last = plan_look(0, spent=0.0, reviews_left=58 + 115, **SIZED)
    assert last is not None and (last.size, last.level) == (58, 0.1), "no look after it: it takes all of delta"
    smaller = plan_look(1, spent=0.05, reviews_left=70, **SIZED)
    assert smaller is not None and smaller.size == 70 and abs(smaller.level - 0.05) < 1e-12
    assert plan_look(1, spent=0.05, reviews_left=29, **SIZED) is None, "below min_reviews: no look"
    tight = {**SIZED, "min_reviews": 5}
    assert min_certifiable(epsilon=0.1, delta=0.1) == 22
    assert plan_look(0, spent=0.0, reviews_left=21, **tight) is None, "too few to certify anything at all of delta"
    assert plan_look(0, spent=0.0, reviews_left=22, **tight) is not None
    assert plan_look(3, spent=0.1, reviews_left=500, **tight) is None, "nothing left of delta"


def test_the_first_candidate_keeps_half_a_small_budget_to_test_it_on() -> None:
    assert first_fit(reviews_left=None, have=0, **SIZED) == 58
    assert first_fit(reviews_left=116, have=0, **SIZED) == 58
    assert first_fit(reviews_left=70, have=0, **SIZED) == 35
    assert first_fit(reviews_left=60, have=11, **SIZED) == 36, "what was drawn counts towards its half"


def test_the_slice_floor_is_where_the_cross_fitted_error_above_it_would_reach_epsilon() -> None:
    confidence = np.linspace(1.0, 0.5, 100)
    right = np.ones(100, dtype=bool)
    right[60:] = np.arange(40) % 2 == 0  # clean on the top 60, then wrong every other item
    floor = slice_floor(confidences=confidence, correct=right, epsilon=0.1)
    assert floor is not None and 0.6 < floor.share < 0.75 and floor.floor == confidence[round(floor.share * 100) - 1]
    assert floor.aim(0.3) == 0.3 and floor.accepted_share(0.3) == 0.3 / floor.share
    assert floor.aim(0.9) == floor.share and floor.accepted_share(0.9) == 1.0, "out of reach: aim at all it reaches"
    assert 0.55 < floor.sure_share < floor.share, "a share of epsilon is reached sooner"
    assert floor.reaches(0.5) and floor.reaches(None) and not floor.reaches(floor.share), "beyond the sure share"
    assert slice_floor(confidences=confidence, correct=np.arange(100) % 2 == 0, epsilon=0.1) is None
    clean = slice_floor(confidences=confidence, correct=np.ones(100, dtype=bool), epsilon=0.1)
    assert clean is not None and clean.floor == 0.0 and clean.share == 1.0, "clean everywhere: the whole stream"

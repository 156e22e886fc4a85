import numpy as np
import pytest

from service.pipeline.review_order import (
    AUDIT_PRIORITY,
    density,
    explain_priority,
    review_priority,
    wrong_chance,
)


def test_uncertain_items_come_before_confident_ones() -> None:
    assert review_priority(wrong_chance=1 - 0.55, density=0.5) > review_priority(wrong_chance=1 - 0.95, density=0.5)


def test_typical_items_come_before_outliers_at_equal_uncertainty() -> None:
    assert review_priority(wrong_chance=1 - 0.6, density=0.9) > review_priority(wrong_chance=1 - 0.6, density=0.1)


def test_priority_is_uncertainty_weighted_by_density() -> None:
    assert review_priority(wrong_chance=1 - 0.6, density=1.0) == pytest.approx(0.4)
    assert review_priority(wrong_chance=1 - 0.6, density=0.0) == pytest.approx(0.3)


def test_audits_come_after_likely_wrong_labels_and_before_probably_right_ones() -> None:
    audit = review_priority(wrong_chance=1 - 0.99, density=0.0, audit=True)
    assert audit == AUDIT_PRIORITY
    assert (
        review_priority(wrong_chance=1 - 0.6, density=0.5) > audit > review_priority(wrong_chance=1 - 0.9, density=1.0)
    )


def test_cold_start_items_come_first_in_the_order_of_their_random_draw() -> None:
    first = review_priority(wrong_chance=1 - 0.99, density=0.0, cold_start_draw=0.7)
    second = review_priority(wrong_chance=1 - 0.2, density=1.0, cold_start_draw=0.3)
    assert first > second > AUDIT_PRIORITY and second > review_priority(wrong_chance=1 - 0.0, density=1.0)
    assert "random" in explain_priority(wrong_chance=1 - 0.5, density=0.5, cold_start_draw=0.1)


def test_explanations_name_what_drove_the_priority() -> None:
    text = explain_priority(wrong_chance=1 - 0.6, density=0.8)
    assert "40% chance of being wrong" in text and "typical" in text and "0.380" in text
    assert "unlike most items" in explain_priority(wrong_chance=1 - 0.6, density=0.1)
    assert "audit" in explain_priority(wrong_chance=1 - 0.99, density=0.3, audit=True).lower()


def clustered(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Four tight clusters on orthogonal axes: sizes 400, 40, 40, 20."""
    sizes = [400, 40, 40, 20]
    centres = np.eye(8)[:4]
    points = np.concatenate([c + 0.05 * rng.normal(size=(s, 8)) for c, s in zip(centres, sizes, strict=True)])
    return points, np.repeat(np.arange(4), sizes)


def test_density_is_high_inside_clusters_and_low_for_outliers() -> None:
    rng = np.random.default_rng(0)
    points, _ = clustered(rng)
    with_outlier = np.vstack([points, -np.ones((1, 8))])
    result = density(embeddings=with_outlier, k=10)
    assert result[:400].mean() > 0.9
    assert result[-1] < 0.2
    assert density(embeddings=np.ones((1, 3))).tolist() == [0.0]


def test_wrong_chance_is_one_minus_confidence_without_a_second_opinion() -> None:
    probs = np.array([[0.8, 0.2], [0.3, 0.7]])
    assert wrong_chance(probs=probs, predicted=[0, 1], support=None) == pytest.approx([0.2, 0.3])


def test_a_disagreeing_probe_raises_the_chance_of_error_and_an_agreeing_one_lowers_it() -> None:
    probs = np.array([[0.9, 0.1]] * 3)
    support = np.array([[0.2, 0.8], [0.5, 0.5], [0.8, 0.2]])
    against, neutral, agree = wrong_chance(probs=probs, predicted=[0, 0, 0], support=support)
    assert agree < neutral < against and neutral == pytest.approx(0.1)
    # Odds 9:1 for the teacher times 1:4 from the probe: 9:4 -> wrong with chance 4/13, and past 0.5 at 1:9.
    assert against == pytest.approx(4 / 13)
    assert wrong_chance(probs=probs[:1], predicted=[0], support=[[0.05, 0.95]])[0] > 0.5


def test_wrong_chance_uses_every_label_of_both_opinions() -> None:
    probs = np.array([[0.5, 0.3, 0.2]])
    # The probe backs the runner-up: the teacher's top label is now more likely wrong than right.
    assert wrong_chance(probs=probs, predicted=[0], support=[[0.1, 0.8, 0.1]])[0] > 0.5
    assert wrong_chance(probs=probs, predicted=[0], support=[[1 / 3] * 3])[0] == pytest.approx(0.5)


def test_a_label_the_probe_contradicts_is_reviewed_before_a_less_confident_one_it_supports() -> None:
    contradicted, supported = wrong_chance(
        probs=np.array([[0.9, 0.1], [0.7, 0.3]]), predicted=[0, 0], support=np.array([[0.1, 0.9], [0.9, 0.1]])
    )
    assert review_priority(wrong_chance=contradicted, density=0.5) > review_priority(
        wrong_chance=supported, density=0.5
    )
    probed = explain_priority(wrong_chance=contradicted, density=0.5, probed=True)
    assert "50% chance of being wrong (by its confidence and a probe" in probed
    assert "(by its confidence)" in explain_priority(wrong_chance=contradicted, density=0.5)

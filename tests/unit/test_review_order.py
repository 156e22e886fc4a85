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


def test_wrong_chance_is_one_minus_confidence_without_neighbours() -> None:
    assert wrong_chance(confidence=0.8, neighbour_disagreement=None, n_labels=2, neighbours=5) == pytest.approx(0.2)
    assert wrong_chance(confidence=0.8, neighbour_disagreement=0.4, n_labels=2, neighbours=0) == pytest.approx(0.2)


def test_disagreeing_neighbours_raise_the_chance_of_error_and_agreeing_ones_lower_it() -> None:
    alone = wrong_chance(confidence=0.9, neighbour_disagreement=None, n_labels=2, neighbours=5)
    against = wrong_chance(confidence=0.9, neighbour_disagreement=1.0, n_labels=2, neighbours=5)
    split = wrong_chance(confidence=0.9, neighbour_disagreement=0.4, n_labels=2, neighbours=5)
    agree = wrong_chance(confidence=0.9, neighbour_disagreement=0.0, n_labels=2, neighbours=5)
    assert agree < alone < against and agree < split < against
    # Binary, all five against: odds 9:1 for the teacher times 1:6 from the votes (add-one smoothed) -> 0.4.
    assert against == pytest.approx(0.4)
    assert agree == pytest.approx(1 / 55)


def test_wrong_chance_spreads_disagreeing_votes_over_the_other_labels() -> None:
    # Six labels: five votes against, spread over five other labels, are weaker evidence than in a binary task.
    binary = wrong_chance(confidence=0.9, neighbour_disagreement=1.0, n_labels=2, neighbours=5)
    six = wrong_chance(confidence=0.9, neighbour_disagreement=1.0, n_labels=6, neighbours=5)
    assert 0.1 < six < binary
    for nd in np.linspace(0, 1, 6):
        assert 0.0 <= wrong_chance(confidence=0.5, neighbour_disagreement=float(nd), n_labels=6, neighbours=5) <= 1.0


def test_a_label_its_neighbours_contradict_is_reviewed_before_a_less_confident_one_they_support() -> None:
    contradicted = wrong_chance(confidence=0.9, neighbour_disagreement=1.0, n_labels=2, neighbours=5)
    supported = wrong_chance(confidence=0.7, neighbour_disagreement=0.0, n_labels=2, neighbours=5)
    assert review_priority(wrong_chance=contradicted, density=0.5) > review_priority(
        wrong_chance=supported, density=0.5
    )
    assert "40% chance of being wrong" in explain_priority(wrong_chance=contradicted, density=0.5)

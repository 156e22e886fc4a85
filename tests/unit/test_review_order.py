import numpy as np
import pytest

from service.pipeline.review_order import (
    AUDIT_PRIORITY,
    density,
    diverse_seed,
    explain_priority,
    review_priority,
)


def test_uncertain_items_come_before_confident_ones() -> None:
    assert review_priority(confidence=0.55, density=0.5) > review_priority(confidence=0.95, density=0.5)


def test_typical_items_come_before_outliers_at_equal_uncertainty() -> None:
    assert review_priority(confidence=0.6, density=0.9) > review_priority(confidence=0.6, density=0.1)


def test_priority_is_uncertainty_weighted_by_density() -> None:
    assert review_priority(confidence=0.6, density=1.0) == pytest.approx(0.4)
    assert review_priority(confidence=0.6, density=0.0) == pytest.approx(0.3)


def test_audits_come_after_likely_wrong_labels_and_before_probably_right_ones() -> None:
    audit = review_priority(confidence=0.99, density=0.0, audit=True)
    assert audit == AUDIT_PRIORITY
    assert review_priority(confidence=0.6, density=0.5) > audit > review_priority(confidence=0.9, density=1.0)


def test_cold_start_items_come_first_in_the_order_of_their_random_draw() -> None:
    first = review_priority(confidence=0.99, density=0.0, cold_start_draw=0.7)
    second = review_priority(confidence=0.2, density=1.0, cold_start_draw=0.3)
    assert first > second > AUDIT_PRIORITY and second > review_priority(confidence=0.0, density=1.0)
    assert "random" in explain_priority(confidence=0.5, density=0.5, cold_start_draw=0.1)


def test_explanations_name_what_drove_the_priority() -> None:
    text = explain_priority(confidence=0.6, density=0.8)
    assert "40% chance of being wrong" in text and "typical" in text and "0.380" in text
    assert "unlike most items" in explain_priority(confidence=0.6, density=0.1)
    assert "audit" in explain_priority(confidence=0.99, density=0.3, audit=True).lower()


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


def test_diverse_seed_covers_every_cluster_where_random_picks_would_not() -> None:
    rng = np.random.default_rng(0)
    points, cluster = clustered(rng)
    covered = [len(set(cluster[diverse_seed(embeddings=points, k=4, seed=s)])) for s in range(20)]
    assert np.mean(covered) >= 3.8
    random_covered = [len(set(cluster[rng.choice(len(points), 4, replace=False)])) for _ in range(20)]
    assert np.mean(random_covered) < 3.0


def test_diverse_seed_is_reproducible_and_skips_duplicates() -> None:
    points = np.repeat(np.eye(3), 10, axis=0)
    first = diverse_seed(embeddings=points, k=5, seed=7)
    assert first == diverse_seed(embeddings=points, k=5, seed=7)
    assert len(first) == 3 and len({tuple(points[i]) for i in first}) == 3
    assert diverse_seed(embeddings=np.empty((0, 3)), k=3, seed=0) == []

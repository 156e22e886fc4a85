import numpy as np
import pytest

from service.pipeline.signals import (
    margin,
    neighbour_disagreement,
    ood_distance,
    student_disagreement,
)

PROBS = np.array([[0.7, 0.2, 0.1], [0.4, 0.4, 0.2], [1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]])


def test_margin_is_top_minus_runner_up() -> None:
    np.testing.assert_allclose(margin(probs=PROBS), [0.5, 0.0, 1.0, 0.0], atol=1e-12)


def test_probs_must_be_two_dimensional() -> None:
    with pytest.raises(ValueError):
        margin(probs=[0.5, 0.5])


def test_neighbour_disagreement_uses_the_k_nearest_labeled_items() -> None:
    labeled = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.2, 0.8]])
    labels = np.array([0, 0, 1, 1, 1])
    query = np.array([[1.0, 0.05], [0.05, 1.0]])
    result = neighbour_disagreement(query_emb=query, labeled_emb=labeled, labeled_labels=labels, predicted=[1, 1], k=2)
    np.testing.assert_allclose(result, [1.0, 0.0])
    wide = neighbour_disagreement(query_emb=query, labeled_emb=labeled, labeled_labels=labels, predicted=[1, 1], k=50)
    np.testing.assert_allclose(wide, [0.4, 0.4])


def test_neighbour_disagreement_skips_the_item_itself() -> None:
    labeled = np.array([[1.0, 0.0], [0.0, 1.0], [0.1, 1.0]])
    labels = np.array([0, 1, 1])
    result = neighbour_disagreement(
        query_emb=labeled[:1], labeled_emb=labeled, labeled_labels=labels, predicted=[0], k=1, self_index=[0]
    )
    np.testing.assert_allclose(result, [1.0])


def test_neighbour_disagreement_is_nan_with_nothing_labeled() -> None:
    result = neighbour_disagreement(
        query_emb=np.eye(2), labeled_emb=np.empty((0, 2)), labeled_labels=[], predicted=[0, 1]
    )
    assert np.isnan(result).all()


def test_student_disagreement_compares_top_labels() -> None:
    student = np.array([[0.6, 0.4], [0.3, 0.7]])
    teacher = np.array([[0.9, 0.1], [0.8, 0.2]])
    assert student_disagreement(student_probs=student, teacher_probs=teacher).tolist() == [False, True]
    with pytest.raises(ValueError):
        student_disagreement(student_probs=student, teacher_probs=teacher[:1])


def test_ood_distance_is_one_minus_nearest_cosine_similarity() -> None:
    labeled = np.array([[1.0, 0.0], [0.0, 2.0]])
    query = np.array([[3.0, 0.0], [1.0, 1.0], [-1.0, 0.0]])
    np.testing.assert_allclose(
        ood_distance(query_emb=query, labeled_emb=labeled), [0.0, 1 - np.sqrt(0.5), 1.0], atol=1e-12
    )
    assert np.isnan(ood_distance(query_emb=query, labeled_emb=np.empty((0, 2)))).all()
    np.testing.assert_allclose(
        ood_distance(query_emb=labeled[:1], labeled_emb=labeled, self_index=[0]), [1.0], atol=1e-12
    )


def test_large_pools_are_processed_in_blocks_with_the_same_result() -> None:
    rng = np.random.default_rng(0)
    labeled = rng.normal(size=(50, 8))
    query = rng.normal(size=(2500, 8))
    distance = ood_distance(query_emb=query, labeled_emb=labeled)
    unit_q = query / np.linalg.norm(query, axis=1, keepdims=True)
    unit_l = labeled / np.linalg.norm(labeled, axis=1, keepdims=True)
    np.testing.assert_allclose(distance, 1 - (unit_q @ unit_l.T).max(axis=1))

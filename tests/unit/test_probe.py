import numpy as np
import pytest

from service.pipeline.pool import LabeledPool, PoolEntry
from service.pipeline.probe import MIN_LABELED, fit_probe


def directions(rng: np.random.Generator, labels: np.ndarray, d: int = 16, noise: float = 0.4) -> np.ndarray:
    """Embeddings whose label is a direction, not a neighbourhood: each label adds its own axis to noise."""
    return noise * rng.normal(size=(labels.size, d)) + np.eye(d)[labels] * 1.0


def test_the_probe_learns_labels_that_lie_along_directions() -> None:
    rng = np.random.default_rng(0)
    train, test = rng.integers(0, 3, 300), rng.integers(0, 3, 300)
    probe = fit_probe(embeddings=directions(rng, train), labels=train, n_labels=3)
    assert probe is not None
    probs = probe.predict(directions(rng, test))
    assert probs.shape == (300, 3) and np.allclose(probs.sum(axis=1), 1.0)
    assert (probs.argmax(axis=1) == test).mean() > 0.9
    # Smoothed: no label is ruled out outright, however sure the probe is.
    assert probs.min() > 0


def test_no_probe_from_too_few_labels_or_a_single_label() -> None:
    rng = np.random.default_rng(1)
    few = rng.integers(0, 2, MIN_LABELED - 1)
    assert fit_probe(embeddings=directions(rng, few), labels=few, n_labels=2) is None
    one = np.zeros(50, dtype=np.int64)
    assert fit_probe(embeddings=directions(rng, one), labels=one, n_labels=2) is None
    assert fit_probe(embeddings=np.zeros((0, 0)), labels=[], n_labels=2) is None
    with pytest.raises(ValueError, match="embeddings but"):
        fit_probe(embeddings=np.ones((3, 2)), labels=[0, 1], n_labels=2)


def test_labels_outside_the_task_are_left_out() -> None:
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 200)
    with_stale = np.where(rng.random(200) < 0.2, -1, labels)
    probe = fit_probe(embeddings=directions(rng, labels), labels=with_stale, n_labels=2)
    assert probe is not None and probe.predict(np.eye(16)[:2]).shape == (2, 2)


def test_the_pool_refits_its_probe_once_it_has_grown_by_a_tenth() -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 60)
    vectors = directions(rng, labels)
    names = ("ham", "spam")
    pool = LabeledPool()

    def add(start: int, stop: int) -> None:
        entries = [PoolEntry(i, f"t{i}", names[labels[i]], "human", vectors[i]) for i in range(start, stop)]
        pool.add(entries, last_label_id=stop)

    add(0, 5)
    assert pool.probe(names) is None
    add(5, 40)
    first = pool.probe(names)
    assert first is not None and pool.probe(names) is first
    add(40, 44)
    assert pool.probe(names) is first
    add(44, 45)
    second = pool.probe(names)
    assert second is not None and second is not first
    assert pool.probe(("ham", "spam", "other")) is not second

import numpy as np
import pytest

from service.pipeline.pool import LabeledPool, PoolEntry
from service.pipeline.probe import MIN_LABELED, Probe, ProbeInput, fit_probe
from service.pipeline.words import WIDTH, hashed_words


def directions(rng: np.random.Generator, labels: np.ndarray, d: int = 16, noise: float = 0.4) -> np.ndarray:
    """Embeddings whose label is a direction, not a neighbourhood: each label adds its own axis to noise."""
    return noise * rng.normal(size=(labels.size, d)) + np.eye(d)[labels] * 1.0


def test_the_probe_learns_labels_that_lie_along_directions() -> None:
    rng = np.random.default_rng(0)
    train, test = rng.integers(0, 3, 300), rng.integers(0, 3, 300)
    probe = fit_probe(inputs=ProbeInput.of(directions(rng, train), None), labels=train, n_labels=3)
    assert probe is not None
    probs = probe.predict(ProbeInput.of(directions(rng, test), None))
    assert probs.shape == (300, 3) and np.allclose(probs.sum(axis=1), 1.0)
    assert (probs.argmax(axis=1) == test).mean() > 0.9
    # Smoothed: no label is ruled out outright, however sure the probe is.
    assert probs.min() > 0


def test_no_probe_from_too_few_labels_or_a_single_label() -> None:
    rng = np.random.default_rng(1)
    few = rng.integers(0, 2, MIN_LABELED - 1)
    assert fit_probe(inputs=ProbeInput.of(directions(rng, few), None), labels=few, n_labels=2) is None
    one = np.zeros(50, dtype=np.int64)
    assert fit_probe(inputs=ProbeInput.of(directions(rng, one), None), labels=one, n_labels=2) is None
    assert fit_probe(inputs=ProbeInput.of(np.zeros((0, 0)), []), labels=[], n_labels=2) is None
    with pytest.raises(ValueError, match="items but"):
        fit_probe(inputs=ProbeInput.of(np.ones((3, 2)), None), labels=[0, 1], n_labels=2)
    with pytest.raises(ValueError, match="embeddings but"):
        ProbeInput.of(np.ones((3, 2)), ["a", "b"])


def test_labels_outside_the_task_are_left_out() -> None:
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 200)
    with_stale = np.where(rng.random(200) < 0.2, -1, labels)
    probe = fit_probe(inputs=ProbeInput.of(directions(rng, labels), None), labels=with_stale, n_labels=2)
    assert probe is not None and probe.predict(ProbeInput.of(np.eye(16)[:2], None)).shape == (2, 2)


def test_words_are_hashed_the_same_in_every_process_and_rows_have_unit_length() -> None:
    words = hashed_words(["How many moons?", "how MANY moons", "", "who"])
    assert words.shape == (4, WIDTH)
    assert (words[0] != words[1]).nnz == 0, "case and punctuation do not change the words"
    assert words[2].nnz == 0
    assert np.allclose(np.sqrt(words.multiply(words).sum(axis=1)).A.ravel(), [1, 1, 0, 1])
    # Fixed buckets (CRC-32): a probe stored by one process reads the same words in another.
    assert sorted(hashed_words(["who"]).indices.tolist()) == [int(words[3].indices[0])] == [146081]


def test_the_probe_reads_the_words_that_the_embeddings_blur() -> None:
    """Embeddings that are noise, labels decided by one opening word: the words carry the probe, survive a round
    trip through JSON, and a word seen in only one labeled item gets no weight."""
    rng = np.random.default_rng(4)
    openers = ("who", "where", "when")

    def questions(labels: np.ndarray) -> list[str]:
        return [f"{openers[label]} is thing {rng.integers(10_000)}" for label in labels]

    train, test = rng.integers(0, 3, 120), rng.integers(0, 3, 200)
    noise = rng.normal(size=(320, 16))
    probe = fit_probe(inputs=ProbeInput.of(noise[:120], questions(train)), labels=train, n_labels=3)
    blind = fit_probe(inputs=ProbeInput.of(noise[:120], None), labels=train, n_labels=3)
    assert probe is not None and blind is not None and probe.word_ids is not None
    held_out = ProbeInput.of(noise[120:], questions(test))
    assert (probe.predict(held_out).argmax(axis=1) == test).mean() > 0.95
    assert (blind.predict(held_out).argmax(axis=1) == test).mean() < 0.6
    assert np.allclose(Probe.from_json(probe.to_json()).predict(held_out), probe.predict(held_out))
    assert probe.word_ids.size < 20, "the random numbers, each in one question, get no weight"


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

"""What `bench student` trains on: human labels of the reviewed items plus the teacher labels the filter accepts."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from service.bench.student_accepted import accepted_labels, split_held_out
from service.ports import FloatArray

NAMES = ("ham", "spam")


def _scores(texts: Sequence[str], names: tuple[str, ...]) -> FloatArray:
    """A teacher that is sure and right on "sure-*" texts, and unsure (and wrong) on the others."""
    rows = []
    for text in texts:
        gold = 1 if text.endswith("spam") else 0
        confidence = 0.99 if text.startswith("sure") else 0.55
        top = gold if text.startswith("sure") else 1 - gold
        row = [1 - confidence, 1 - confidence]
        row[top] = confidence
        rows.append(row)
    return np.asarray(rows)


def _pairs(prefix: str, n: int) -> list[tuple[str, str]]:
    return [(f"{prefix}-{i}-{NAMES[i % 2]}", NAMES[i % 2]) for i in range(n)]


def test_split_is_seeded_and_drops_repeated_pairs() -> None:
    pairs = _pairs("sure", 20) + _pairs("sure", 5)
    held_out, rest = split_held_out(pairs, test_size=5, seed=3)
    assert (held_out, rest) == split_held_out(pairs, test_size=5, seed=3)
    assert len(held_out) == 5 and len(rest) == 15
    assert not set(held_out) & set(rest)


def test_only_certified_teacher_labels_join_the_human_ones() -> None:
    pool, audit = _pairs("pool", 10), _pairs("sure-audit", 100) + _pairs("unsure-audit", 100)
    machine = _pairs("sure-cand", 50) + _pairs("unsure-cand", 50)
    held_out = _pairs("sure-held", 40)
    result = accepted_labels(
        pool=pool,
        audit=audit,
        machine=machine,
        held_out=held_out,
        label_names=NAMES,
        scores=_scores,
        uncached_scores=_scores,
        epsilon=0.1,
        delta=0.1,
    )
    assert result.threshold is not None and result.threshold > 0.55
    assert result.error_bound is not None and result.error_bound <= 0.1
    assert result.machine_accepted == 50 and result.machine_sent_to_review == 50
    assert result.accepted_machine_accuracy == 1.0
    assert result.human_texts == frozenset(text for text, _ in pool + audit)
    assert len(result.labels) == 10 + 200 + 50
    assert not any(text.startswith("unsure-cand") for text in result.labels)
    assert result.teacher_predictions == dict(held_out)
    assert result.teacher_items_per_s > 0


def test_without_a_certified_threshold_no_machine_label_is_used() -> None:
    result = accepted_labels(
        pool=_pairs("pool", 10),
        audit=_pairs("unsure-audit", 100),
        machine=_pairs("sure-cand", 20),
        held_out=_pairs("sure-held", 5),
        label_names=NAMES,
        scores=_scores,
        uncached_scores=_scores,
        epsilon=0.05,
        delta=0.1,
    )
    assert result.threshold is None and result.machine_accepted == 0
    assert len(result.labels) == 110

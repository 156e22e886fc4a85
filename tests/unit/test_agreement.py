"""Agreement scores against published and hand-computed values."""

from __future__ import annotations

import pytest

from service.pipeline.agreement import cohen_kappa, krippendorff_alpha, pairwise_kappa, reviewer_accuracy


def test_krippendorff_alpha_matches_the_published_nominal_example() -> None:
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", example C: 4 coders, 12 units, missing data.
    coders = [
        "1 2 3 3 2 1 4 1 2 . . .",
        "1 2 3 3 2 2 4 1 2 5 . 3",
        ". 3 3 3 2 3 4 2 2 5 1 .",
        "1 2 3 3 2 4 4 1 2 5 1 .",
    ]
    units = [[v for v in column if v != "."] for column in zip(*(row.split() for row in coders), strict=True)]
    assert krippendorff_alpha(units=units) == pytest.approx(0.743, abs=5e-4)


def test_alpha_edges() -> None:
    assert krippendorff_alpha(units=[["a"], ["b"]]) is None, "no unit has two answers"
    assert krippendorff_alpha(units=[["a", "a"], ["a", "a"]]) is None, "no variation: undefined"
    assert krippendorff_alpha(units=[["a", "a"], ["b", "b"]]) == pytest.approx(1.0)


def test_cohen_kappa_by_hand() -> None:
    # p_o = 0.75; p_e = 0.5 * 0.25 + 0.5 * 0.75 = 0.5; kappa = 0.5.
    assert cohen_kappa(first=["a", "a", "b", "b"], second=["a", "b", "b", "b"]) == pytest.approx(0.5)
    assert cohen_kappa(first=["a", "a"], second=["a", "a"]) is None
    assert cohen_kappa(first=[], second=[]) is None
    with pytest.raises(ValueError):
        cohen_kappa(first=["a"], second=[])


def test_pairs_and_accuracy() -> None:
    votes = {1: {"ann": "a", "bob": "a"}, 2: {"ann": "b", "bob": "a", "cy": "b"}, 3: {"ann": "b", "bob": "b"}}
    pairs = {(p.first, p.second): p for p in pairwise_kappa(votes=votes)}
    assert pairs["ann", "bob"].items == 3 and pairs["ann", "bob"].observed == pytest.approx(2 / 3)
    assert pairs["ann", "cy"].items == 1 and pairs["ann", "cy"].kappa is None
    accuracy = reviewer_accuracy(votes=votes, truth={1: "a", 2: "b"})
    assert (accuracy["bob"].items, accuracy["bob"].correct, accuracy["bob"].accuracy) == (2, 1, 0.5)
    assert accuracy["cy"].accuracy == 1.0

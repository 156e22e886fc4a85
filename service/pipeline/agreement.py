"""Agreement between human reviewers (nominal labels): Cohen's kappa for a pair, Krippendorff's alpha for any number
of reviewers with missing answers, and each reviewer's accuracy against reference labels. Pure numpy.

Every score is None where it is undefined (fewer than two answers to compare, or no variation at all, so that
chance agreement is already perfect), never NaN, so it can go into JSON as it is."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from service.pipeline import label_sets, span_sets

Votes = Mapping[int, Mapping[str, str]]
"""item id -> reviewer -> label."""


def cohen_kappa(*, first: Sequence[str], second: Sequence[str]) -> float | None:
    """Cohen's kappa of two reviewers' labels on the same items, in the same order: (p_o - p_e) / (1 - p_e)."""
    if len(first) != len(second):
        raise ValueError("both reviewers must label the same items")
    if not first:
        return None
    categories = sorted(set(first) | set(second))
    index = {label: i for i, label in enumerate(categories)}
    a = np.array([index[label] for label in first])
    b = np.array([index[label] for label in second])
    observed = float(np.mean(a == b))
    chance = float(np.bincount(a, minlength=len(categories)) @ np.bincount(b, minlength=len(categories))) / a.size**2
    if chance >= 1.0:
        return None
    return (observed - chance) / (1.0 - chance)


def krippendorff_alpha(*, units: Sequence[Sequence[str]]) -> float | None:
    """Krippendorff's alpha for nominal labels. Each unit holds the labels its reviewers gave (any number; units
    with fewer than two are not pairable and are ignored): alpha = 1 - observed / expected disagreement."""
    pairable = [unit for unit in units if len(unit) >= 2]
    if not pairable:
        return None
    categories = sorted({label for unit in pairable for label in unit})
    index = {label: i for i, label in enumerate(categories)}
    counts = np.zeros((len(pairable), len(categories)))
    for row, unit in enumerate(pairable):
        np.add.at(counts[row], [index[label] for label in unit], 1.0)
    per_unit = counts.sum(axis=1)
    # Coincidences: every ordered pair of answers within a unit, weighted 1 / (m_u - 1).
    pairs = np.einsum("uc,uk->ck", counts / (per_unit - 1.0)[:, None], counts)
    pairs -= np.diag((counts / (per_unit - 1.0)[:, None]).sum(axis=0))
    totals = pairs.sum(axis=1)
    n = totals.sum()
    observed = pairs.sum() - np.trace(pairs)
    expected = (totals.sum() ** 2 - float(totals @ totals)) / (n - 1.0)
    if expected <= 0.0:
        return None
    return float(1.0 - observed / expected)


@dataclass(frozen=True)
class PairAgreement:
    first: str
    second: str
    items: int
    kappa: float | None
    observed: float | None
    """Share of the shared items on which both gave the same label."""
    span_f1: float | None = None
    """A spans task's mean span-level F1 of one's span set against the other's over the shared items."""


def label_votes(*, votes: Votes, label: str, labels: Sequence[str]) -> Votes:
    """A multi-label task's votes on one of its labels: each answer (a label set's name) as "yes" when the set has
    it, else "no", so that every measure here reads agreement on that label alone."""
    return {
        item_id: {
            reviewer: "yes" if label in label_sets.members(answer, labels) else "no"
            for reviewer, answer in answered.items()
        }
        for item_id, answered in votes.items()
    }


def pairwise_kappa(*, votes: Votes, spans: bool = False) -> list[PairAgreement]:
    """Cohen's kappa for every pair of reviewers that labeled at least one item in common, and with ``spans`` (the
    answers are span sets) their mean span F1."""
    reviewers = sorted({reviewer for answers in votes.values() for reviewer in answers})
    result = []
    for first, second in combinations(reviewers, 2):
        shared = [answers for answers in votes.values() if first in answers and second in answers]
        if not shared:
            continue
        a = [answers[first] for answers in shared]
        b = [answers[second] for answers in shared]
        observed = float(np.mean([x == y for x, y in zip(a, b, strict=True)]))
        f1 = float(np.mean([span_sets.span_f1(x, y) for x, y in zip(a, b, strict=True)])) if spans else None
        result.append(PairAgreement(first, second, len(shared), cohen_kappa(first=a, second=b), observed, f1))
    return result


@dataclass(frozen=True)
class ReviewerAccuracy:
    reviewer: str
    items: int
    correct: int

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.items if self.items else None


def reviewer_accuracy(*, votes: Votes, truth: Mapping[int, str]) -> dict[str, ReviewerAccuracy]:
    """Each reviewer's answers on the items that have a reference label (gold, or an agreed final label)."""
    tallies: dict[str, list[int]] = {}
    for item_id, answers in votes.items():
        if item_id not in truth:
            continue
        for reviewer, label in answers.items():
            tally = tallies.setdefault(reviewer, [0, 0])
            tally[0] += 1
            tally[1] += int(label == truth[item_id])
    return {reviewer: ReviewerAccuracy(reviewer, n, correct) for reviewer, (n, correct) in sorted(tallies.items())}

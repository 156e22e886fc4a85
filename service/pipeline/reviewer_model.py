"""How good each reviewer is, learned from the answers themselves: a Dawid-Skene model with a Dirichlet prior.

Each reviewer has a confusion matrix (row: the true label, column: their answer) and the labels a prior. EM
alternates between the posterior of each item's true label given its answers and the matrices given those
posteriors (Dawid and Skene, 1979). Gold items are clamped to their known label, so a little gold anchors the
scale. The prior is a few pseudo-answers per row that say "right more often than not" (Bayesian DS, as in
Passonneau and Carpenter, 2014): a reviewer seen on five items is not declared perfect or useless.

Only items that say something about a reviewer are fitted: gold items and items with two answers or more. An item
answered once says nothing about its one reviewer but agrees with itself, and fitted it would lift every reviewer
towards 1. Pure numpy, like the rest of pipeline/."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from service.pipeline.agreement import Votes

FloatArray = npt.NDArray[np.float64]

PRIOR_RIGHT = 4.0
"""Pseudo-answers on the diagonal of each confusion row: with PRIOR_WRONG, a new reviewer is taken to be right
about 80% of the time, and real answers outweigh the prior after about a dozen items."""
PRIOR_WRONG = 1.0
"""Pseudo-answers spread over the wrong labels of each row, together."""
DEFAULT_AGGREGATE_AT = 0.95
"""Answers that disagree are settled by their weighted aggregate when it is at least this probable (a task's
review settings may change it); below, a lead adjudicates."""
ITERATIONS = 200
TOLERANCE = 1e-7


@dataclass(frozen=True)
class ReviewerModel:
    labels: tuple[str, ...]
    prior: FloatArray
    """The share of each label among the fitted items' posteriors (smoothed)."""
    confusion: dict[str, FloatArray]
    """reviewer -> K x K: P(answer = column | true label = row)."""
    evidence: dict[str, int]
    """reviewer -> answers on fitted (gold or multiply answered) items: what their matrix rests on."""

    def accuracy(self, reviewer: str) -> float:
        """The chance the reviewer's answer is right on an item drawn from the prior."""
        return float(self.prior @ np.diag(self._matrix(reviewer)))

    def posterior(self, answers: Mapping[str, str]) -> FloatArray:
        """P(true label | these answers), each answer weighted by its reviewer's matrix."""
        log = np.log(self.prior).copy()
        index = {label: k for k, label in enumerate(self.labels)}
        for reviewer, answer in answers.items():
            log += np.log(self._matrix(reviewer)[:, index[answer]])
        return _normalise(log)

    def aggregate(self, answers: Mapping[str, str]) -> tuple[str, float]:
        """The weighted aggregate of an item's answers: its most probable label and that probability."""
        post = self.posterior(answers)
        return self.labels[int(post.argmax())], float(post.max())

    def _matrix(self, reviewer: str) -> FloatArray:
        found = self.confusion.get(reviewer)
        return found if found is not None else _prior_confusion(len(self.labels))


def _prior_confusion(k: int) -> FloatArray:
    """The prior's mean matrix: a reviewer nothing is known of."""
    counts = np.full((k, k), PRIOR_WRONG / max(1, k - 1))
    np.fill_diagonal(counts, PRIOR_RIGHT)
    result: FloatArray = counts / counts.sum(axis=1, keepdims=True)
    return result


def _normalise(log: FloatArray) -> FloatArray:
    shifted = np.exp(log - log.max(axis=-1, keepdims=True))
    result: FloatArray = shifted / shifted.sum(axis=-1, keepdims=True)
    return result


def fit_reviewers(*, votes: Votes, labels: Sequence[str], gold: Mapping[int, str] | None = None) -> ReviewerModel:
    """Fit the model on ``votes`` (item -> reviewer -> answer) over the task's ``labels``, with ``gold`` (item ->
    known label) clamped. Answers outside ``labels`` (a label since removed) are left out."""
    names = tuple(labels)
    k = len(names)
    index = {label: i for i, label in enumerate(names)}
    gold = {item: label for item, label in (gold or {}).items() if label in index}
    fitted = [
        item
        for item, answers in votes.items()
        if (item in gold or len(answers) >= 2) and any(answer in index for answer in answers.values())
    ]
    reviewers = sorted({reviewer for item in fitted for reviewer in votes[item]})
    if not fitted or k < 2:
        return ReviewerModel(names, np.full(k, 1.0 / max(k, 1)), {}, {})
    who = {reviewer: r for r, reviewer in enumerate(reviewers)}
    rows, revs, answers = [], [], []
    for row, item in enumerate(fitted):
        for reviewer, answer in votes[item].items():
            if answer in index:
                rows.append(row)
                revs.append(who[reviewer])
                answers.append(index[answer])
    row_of, rev_of, answer_of = np.array(rows), np.array(revs), np.array(answers)
    clamped = np.array([item in gold for item in fitted])
    truth = np.zeros((len(fitted), k))
    truth[np.flatnonzero(clamped), [index[gold[item]] for item in fitted if item in gold]] = 1.0

    # Start from the answer shares of each item (a soft majority vote).
    post = np.zeros((len(fitted), k))
    np.add.at(post, (row_of, answer_of), 1.0)
    post = post / post.sum(axis=1, keepdims=True)
    post[clamped] = truth[clamped]
    pseudo = np.full((k, k), PRIOR_WRONG / (k - 1))
    np.fill_diagonal(pseudo, PRIOR_RIGHT)
    for _ in range(ITERATIONS):
        prior = (post.sum(axis=0) + 1.0) / (len(fitted) + k)
        counts = np.broadcast_to(pseudo, (len(reviewers), k, k)).copy()
        # counts[r, true, answer] += P(item's true label) for each answer r gave.
        np.add.at(counts, (rev_of[:, None], np.arange(k)[None, :], answer_of[:, None]), post[row_of])
        confusion = counts / counts.sum(axis=2, keepdims=True)
        log = np.tile(np.log(prior), (len(fitted), 1))
        np.add.at(log, row_of, np.log(confusion[rev_of, :, answer_of]))
        updated = _normalise(log)
        updated[clamped] = truth[clamped]
        change = float(np.abs(updated - post).max())
        post = updated
        if change < TOLERANCE:
            break
    evidence = np.bincount(rev_of, minlength=len(reviewers))
    return ReviewerModel(
        labels=names,
        prior=prior,
        confusion={reviewer: confusion[r] for reviewer, r in who.items()},
        evidence={reviewer: int(evidence[r]) for reviewer, r in who.items()},
    )


def majority(answers: Mapping[str, str], *, rng: np.random.Generator) -> str:
    """The most frequent answer, ties broken at random: the unweighted baseline."""
    tally: dict[str, int] = {}
    for answer in answers.values():
        tally[answer] = tally.get(answer, 0) + 1
    top = max(tally.values())
    tied = sorted(label for label, n in tally.items() if n == top)
    return tied[int(rng.integers(len(tied)))]

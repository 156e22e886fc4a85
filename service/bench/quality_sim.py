"""What a simulated labeling run works on and gives back, the simulated reviewer, and the two plain baselines
(random review, a max-probability threshold). The certified labeler and the active-learning baseline are in
stacked_run.py.

Teacher probabilities are fixed for the run (scored once, outside), the reviewer is simulated from gold
(optionally noisy), and every method spends at most the same review budget. A review order is recorded
so the final accuracy after any number of reviews can be drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

from service.pipeline.probe import ProbeInput
from service.ports import FloatArray, TaskKind

IntArray = npt.NDArray[np.int64]
NEIGHBOURS = 5


@dataclass(frozen=True)
class Pool:
    """What one dataset gives every run: teacher probabilities, gold, and (optionally) embeddings."""

    probs: FloatArray
    gold: IntArray
    embeddings: FloatArray | None
    density: FloatArray
    """Representativeness of each item in [0, 1]; all 0.5 without embeddings."""
    labeled_embeddings: FloatArray | None = None
    """Items labeled before the run (the teacher's few-shot pool), which the service holds as labeled
    neighbours from the start; None or empty when there are none."""
    labeled_labels: IntArray | None = None
    labeled_probs: FloatArray | None = None
    """The teacher's probabilities for the labeled items, as the service holds them for reviewed items; with
    them the certified labelers fit their first candidate on the labeled items."""
    texts: tuple[str, ...] | None = None
    """The items' texts, whose words the certified labelers' probe reads beside the embeddings; None: embeddings
    alone."""
    labeled_texts: tuple[str, ...] | None = None
    kind: TaskKind = "single_label"
    """What a label is: columns of ``probs`` are labels, or label sets (pipeline/label_sets.py)."""

    @cached_property
    def items(self) -> ProbeInput | None:
        """What the certified labelers' probe reads of every item (hashed once per data set)."""
        return None if self.embeddings is None else ProbeInput.of(self.embeddings, self.texts)

    @cached_property
    def labeled_items(self) -> ProbeInput | None:
        """The same of the items labeled before the run."""
        if self.labeled_embeddings is None:
            return None
        return ProbeInput.of(self.labeled_embeddings, self.labeled_texts)


@dataclass(frozen=True)
class RunConfig:
    epsilon: float
    delta: float
    review_budget: int
    reviewer_noise: float
    audit_share: float
    min_reviews: int
    """Certification items below which nothing is certified (the service's policy.min_reviews)."""
    target_coverage: float | None
    """The task's target: cold start stops once a look certifying it is out of reach within the budget."""
    baseline_threshold: float


@dataclass(frozen=True)
class Outcome:
    """One method's result in one run."""

    accepted: npt.NDArray[np.bool_]
    """Items whose machine label stands unreviewed as accepted."""
    final: IntArray
    """Final label of every item: the reviewer's where reviewed, else the machine's."""
    review_order: IntArray
    reviewer_labels: IntArray
    """The reviewer's label for each entry of review_order."""
    machine: IntArray
    error_bound: float | None = None
    audit_reviews: int = 0
    audit_errors: int = 0
    cold_start_reviews: int = 0
    """Seed plus uniform cold-start reviews, spent before anything could be accepted."""

    def metrics(self, gold: IntArray, epsilon: float) -> dict[str, float | int | None]:
        n_accepted = int(self.accepted.sum())
        accepted_accuracy = float((self.machine[self.accepted] == gold[self.accepted]).mean()) if n_accepted else None
        realised_error = 1.0 - accepted_accuracy if accepted_accuracy is not None else 0.0
        return {
            "accepted_accuracy": accepted_accuracy,
            "coverage": n_accepted / len(gold),
            "human_reviews": len(self.review_order),
            "error_bound": self.error_bound,
            "final_accuracy": float((self.final == gold).mean()),
            "realised_error": realised_error,
            "within_epsilon": int(realised_error <= epsilon),
            "cold_start_reviews": self.cold_start_reviews,
            "audit_reviews": self.audit_reviews,
            "audit_error": self.audit_errors / self.audit_reviews if self.audit_reviews else None,
        }

    def accuracy_curve(self, gold: IntArray, budget: int) -> FloatArray:
        """Final accuracy after 0, 1, ..., budget reviews (flat once this method stops reviewing)."""
        gain = np.zeros(budget + 1)
        fixed = (self.reviewer_labels == gold[self.review_order]).astype(float)
        was = (self.machine[self.review_order] == gold[self.review_order]).astype(float)
        steps = min(budget, len(self.review_order))
        gain[1 : steps + 1] = np.cumsum(fixed - was)[:steps]
        gain[steps + 1 :] = gain[steps]
        curve: FloatArray = (float((self.machine == gold).sum()) + gain) / len(gold)
        return curve


def simulate_reviewer(gold: IntArray, k: int, noise: float, rng: np.random.Generator) -> IntArray:
    """Gold labels, each replaced with probability ``noise`` by a uniformly drawn other label."""
    flip = rng.random(gold.size) < noise
    other = (gold + rng.integers(1, k, gold.size)) % k
    labels: IntArray = np.where(flip, other, gold)
    return labels


def finish(machine: IntArray, order: IntArray, reviewer: IntArray, accepted: npt.NDArray[np.bool_]) -> Outcome:
    """The outcome of reviewing ``order`` and keeping ``machine`` elsewhere; reviewed items are never accepted."""
    final = machine.copy()
    final[order] = reviewer[order]
    accepted = accepted.copy()
    accepted[order] = False
    return Outcome(accepted=accepted, final=final, review_order=order, reviewer_labels=reviewer[order], machine=machine)


def run_random_review(pool: Pool, config: RunConfig, rng: np.random.Generator, reviewer: IntArray) -> Outcome:
    """Review a uniform random sample of the budget; accept every other teacher label."""
    n = int(pool.probs.shape[0])
    machine = pool.probs.argmax(axis=1).astype(np.int64)
    order = rng.choice(n, min(config.review_budget, n), replace=False).astype(np.int64)
    return finish(machine, order, reviewer, np.ones(n, dtype=bool))


def run_max_prob(pool: Pool, config: RunConfig, rng: np.random.Generator, reviewer: IntArray) -> Outcome:
    """Accept teacher labels with probability >= the fixed threshold; review the rest in random order."""
    machine = pool.probs.argmax(axis=1).astype(np.int64)
    accepted = pool.probs.max(axis=1) >= config.baseline_threshold
    below = rng.permutation(np.flatnonzero(~accepted))
    return finish(machine, below[: config.review_budget].astype(np.int64), reviewer, accepted)

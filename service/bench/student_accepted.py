"""The labels a student is trained on in `understudy bench student`: what the service would have accepted.

After the held-out items are set aside, the rest of the file plays a labeling run. A reviewed pool (gold, as a
human would give) is the teacher's few-shot pool; a uniform audit sample is scored by the teacher and reviewed,
and certifies a confidence threshold by Learn-then-Test (``fit_policy``) for the candidates the teacher scores
next. The student trains on the human labels of pool and audit plus the teacher labels the threshold accepts;
what the filter would send to review, and nobody has reviewed, is left out. The teacher's own predictions on the
held-out items and its measured items per second come back beside them, so student and teacher are compared on
the same items in the same run.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from service.bench.quality import TeacherScores
from service.pipeline.policy import fit_policy

SPEED_ITEMS = 32
"""Held-out items the teacher scores once more, uncached, to measure its items per second."""


def split_held_out(
    pairs: Sequence[tuple[str, str]], *, test_size: int, seed: int
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(held_out, rest): a seeded shuffle of the distinct pairs, the first ``test_size`` held out."""
    shuffled = list(dict.fromkeys(pairs))
    random.Random(seed).shuffle(shuffled)
    return shuffled[:test_size], shuffled[test_size:]


@dataclass(frozen=True)
class AcceptedLabels:
    labels: dict[str, str]
    """text -> the label the service holds for it: human for pool and audit items, teacher for accepted ones."""
    human_texts: frozenset[str]
    machine_accepted: int
    machine_sent_to_review: int
    threshold: float | None
    error_bound: float | None
    accepted_machine_accuracy: float | None
    teacher_predictions: dict[str, str]
    """held-out text -> the teacher's label."""
    teacher_items_per_s: float

    def summary(self) -> dict[str, float | int | None]:
        return {
            "human_labels": len(self.human_texts),
            "machine_accepted": self.machine_accepted,
            "machine_sent_to_review": self.machine_sent_to_review,
            "threshold": self.threshold,
            "error_bound": self.error_bound,
            "accepted_machine_accuracy": self.accepted_machine_accuracy,
        }


def accepted_labels(
    *,
    pool: Sequence[tuple[str, str]],
    audit: Sequence[tuple[str, str]],
    machine: Sequence[tuple[str, str]],
    held_out: Sequence[tuple[str, str]],
    label_names: tuple[str, ...],
    scores: TeacherScores,
    uncached_scores: TeacherScores,
    epsilon: float,
    delta: float,
) -> AcceptedLabels:
    """Certify a threshold on ``audit`` (reviewed, teacher-scored), route ``machine`` with it and return what the
    service holds: the human labels of ``pool`` and ``audit`` and the accepted teacher labels of ``machine``.
    ``scores`` draws its few-shot examples from ``pool``."""
    if not audit or not machine or not held_out:
        raise ValueError("too few items for a reviewed pool, an audit sample, candidates and held-out items")
    index = {name: i for i, name in enumerate(label_names)}
    # One call, so batch calibration sees audit, candidates and held-out items alike.
    probs = scores([text for text, _ in [*audit, *machine, *held_out]], label_names)
    audit_probs, machine_probs = probs[: len(audit)], probs[len(audit) : len(audit) + len(machine)]
    held_probs = probs[len(audit) + len(machine) :]
    audit_ok = audit_probs.argmax(axis=1) == np.array([index[label] for _, label in audit])
    machine_confidence = machine_probs.max(axis=1)
    policy = fit_policy(
        confidences=audit_probs.max(axis=1),
        correct=audit_ok,
        epsilon=epsilon,
        delta=delta,
        pool_confidences=machine_confidence,
    )
    accepted = (
        machine_confidence >= policy.threshold if policy.threshold is not None else np.zeros(len(machine), dtype=bool)
    )
    labels = dict([*pool, *audit])
    human = frozenset(labels)
    machine_labels = [label_names[i] for i in machine_probs.argmax(axis=1)]
    right = 0
    for (text, gold), label, ok in zip(machine, machine_labels, accepted, strict=True):
        if ok:
            labels.setdefault(text, label)
            right += label == gold
    started = time.perf_counter()
    uncached_scores([text for text, _ in held_out[:SPEED_ITEMS]], label_names)
    speed = min(SPEED_ITEMS, len(held_out)) / (time.perf_counter() - started)
    n_accepted = int(accepted.sum())
    return AcceptedLabels(
        labels=labels,
        human_texts=human,
        machine_accepted=n_accepted,
        machine_sent_to_review=len(machine) - n_accepted,
        threshold=policy.threshold,
        error_bound=policy.error_bound,
        accepted_machine_accuracy=right / n_accepted if n_accepted else None,
        teacher_predictions={
            text: label_names[i] for (text, _), i in zip(held_out, held_probs.argmax(axis=1), strict=True)
        },
        teacher_items_per_s=speed,
    )

from __future__ import annotations

import numpy as np
import pytest

from service.pipeline.cascade import (
    fit_student_threshold,
    level_report,
    promotion_gate,
    split_by_confidence,
    student_policy,
)
from service.pipeline.policy import clopper_pearson_upper, fit_policy


def test_split_sends_unsure_rows_to_the_teacher() -> None:
    probs = np.array([[0.95, 0.05], [0.6, 0.4], [0.1, 0.9], [0.5, 0.5]])
    split = split_by_confidence(probs=probs, threshold=0.9)
    assert split.student.tolist() == [0, 2]
    assert split.escalate.tolist() == [1, 3]
    assert split_by_confidence(probs=probs, threshold=None).escalate.tolist() == [0, 1, 2, 3]
    assert split_by_confidence(probs=np.zeros((0, 2)), threshold=0.5).student.size == 0


def test_threshold_stops_where_errors_begin() -> None:
    # 200 gold items: confidences 1.0 down to ~0.5; the student is right above 0.8 and wrong half the time below.
    confidences = np.linspace(1.0, 0.5, 200)
    correct = np.where(confidences >= 0.8, True, np.arange(200) % 2 == 0)
    fitted = fit_student_threshold(confidences=confidences, correct=correct, epsilon=0.05, delta=0.1)
    assert fitted.threshold is not None
    assert 0.7 < fitted.threshold < 0.85
    accepted = confidences >= fitted.threshold
    assert fitted.accepted == int(accepted.sum())
    errors = int((~correct[accepted]).sum())
    bound = clopper_pearson_upper(errors=errors, n=fitted.accepted, delta=0.05)
    assert fitted.error_bound == pytest.approx(bound), "each of the two scans holds at delta / 2"
    assert fitted.error_bound is not None and fitted.error_bound <= 0.05


def test_a_scan_stops_at_its_first_failure_but_the_second_starts_at_half_the_gold() -> None:
    # Top 40 all wrong: the scan from the top fails at once; the one from half the gold (40 errors in 2,500)
    # passes and goes on down to the whole set.
    confidences = np.linspace(1.0, 0.5, 5000)
    correct = np.arange(5000) >= 40
    fitted = fit_student_threshold(confidences=confidences, correct=correct, epsilon=0.05, min_accepted=30)
    assert fitted.accepted == 5000 and fitted.threshold == pytest.approx(0.5)
    # Wrong everywhere below the top 200: only the scan from the top can certify, down to where errors begin.
    correct = np.arange(5000) < 200
    fitted = fit_student_threshold(confidences=confidences, correct=correct, epsilon=0.05, min_accepted=30)
    assert 200 <= fitted.accepted < 220, "a few errors past the top 200 still fit under epsilon"
    # Wrong in the top 40 and below 200: neither scan passes.
    correct = (np.arange(5000) >= 40) & (np.arange(5000) < 200)
    assert fit_student_threshold(confidences=confidences, correct=correct, epsilon=0.05).threshold is None


def test_one_confident_error_near_the_top_no_longer_blocks_the_student() -> None:
    # The demo's int8 student on 100 sampled gold items: wrong at ranks 24 and 99.
    confidences = np.linspace(0.999, 0.5, 100)
    correct = ~np.isin(np.arange(100), [24, 99])
    fitted = fit_student_threshold(confidences=confidences, correct=correct, epsilon=0.1, delta=0.1)
    assert fitted.accepted == 100 and fitted.error_bound is not None and fitted.error_bound <= 0.1


def test_too_little_gold_certifies_nothing() -> None:
    fitted = fit_student_threshold(confidences=[0.99] * 10, correct=[True] * 10, epsilon=0.05)
    assert fitted.threshold is None
    with pytest.raises(ValueError):
        fit_student_threshold(confidences=[0.9, 0.8], correct=[True], epsilon=0.05)


def test_ties_are_accepted_together() -> None:
    fitted = fit_student_threshold(confidences=[0.9] * 100, correct=[True] * 100, epsilon=0.05, min_accepted=30)
    assert (fitted.threshold, fitted.accepted) == (0.9, 100)


def test_promotion_gate() -> None:
    assert promotion_gate(0.91, 0.92, 0.02)
    assert promotion_gate(0.90, 0.92, 0.02)
    assert not promotion_gate(0.89, 0.92, 0.02)


def test_level_report() -> None:
    report = level_report(
        handled_by=["student", "student", "teacher", "human"],
        y_pred=["a", "b", "a", "b"],
        y_true=["a", "a", None, "b"],
    )
    assert report["student"] == {"items": 2, "share": 0.5, "accuracy": 0.5}
    assert report["teacher"] == {"items": 1, "share": 0.25, "accuracy": None}
    assert report["human"]["accuracy"] == 1.0
    with pytest.raises(ValueError):
        level_report(handled_by=["student"], y_pred=[], y_true=[])


def test_student_policy_takes_the_students_certified_threshold() -> None:
    teacher = fit_policy(confidences=[], correct=[], epsilon=0.05, delta=0.1, audit_share=0.1)
    assert teacher.cold_start
    chosen = student_policy(teacher, {"threshold": 0.83, "threshold_error_bound": 0.04, "gold_examples": 120})
    assert (chosen.threshold, chosen.error_bound, chosen.fitted_on) == (0.83, 0.04, 120)
    assert (chosen.audit_share, chosen.ood_max, chosen.neighbour_max) == (0.1, teacher.ood_max, teacher.neighbour_max)
    uncertified = student_policy(teacher, {"threshold": 1.01, "threshold_error_bound": None})
    assert uncertified.threshold == 1.01 and uncertified.error_bound is None


def test_with_little_gold_one_scan_runs_at_the_full_level() -> None:
    # 56 gold items (the demo's sampled gold): the scans would both start at 30, so one runs at delta.
    confidences = np.linspace(0.999, 0.5, 56)
    fitted = fit_student_threshold(confidences=confidences, correct=np.ones(56, dtype=bool), epsilon=0.1, delta=0.1)
    assert fitted.accepted == 56
    assert fitted.error_bound == pytest.approx(clopper_pearson_upper(errors=0, n=56, delta=0.1))

from __future__ import annotations

import numpy as np
import pytest

from service.pipeline.metrics import classification_report, expected_calibration_error


def test_report_matches_hand_counts() -> None:
    y_true = ["a", "a", "a", "b", "b", "c"]
    y_pred = ["a", "a", "b", "b", "c", "c"]
    report = classification_report(y_true=y_true, y_pred=y_pred, labels=["a", "b", "c"])
    a, b, c = (report["per_class"][k] for k in "abc")
    assert (a["precision"], a["recall"], a["support"]) == (1.0, pytest.approx(2 / 3), 3)
    assert (b["precision"], b["recall"], b["support"]) == (0.5, 0.5, 2)
    assert (c["precision"], c["recall"], c["support"]) == (0.5, 1.0, 1)
    assert a["f1"] == pytest.approx(0.8)
    assert c["f1"] == pytest.approx(2 / 3)
    assert report["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert report["accuracy"] == pytest.approx(4 / 6)
    assert report["n"] == 6


def test_unpredicted_and_absent_classes_score_zero_and_count_in_macro() -> None:
    report = classification_report(y_true=["a", "a"], y_pred=["a", "x"], labels=["a", "b"])
    assert report["per_class"]["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert report["per_class"]["a"]["recall"] == 0.5
    assert report["macro_f1"] == pytest.approx((2 / 3) / 2)
    assert report["accuracy"] == 0.5


def test_report_rejects_unequal_lengths() -> None:
    with pytest.raises(ValueError, match="y_pred"):
        classification_report(y_true=["a"], y_pred=[], labels=["a"])


def test_empty_report_is_zero() -> None:
    report = classification_report(y_true=[], y_pred=[], labels=["a", "b"])
    assert (report["accuracy"], report["macro_f1"], report["n"]) == (0.0, 0.0, 0)


def test_ece_is_zero_when_confidence_equals_accuracy() -> None:
    # Ten items at confidence 0.8, eight of them right.
    probs = np.tile([0.8, 0.2], (10, 1))
    y_true = np.array([0] * 8 + [1] * 2)
    assert expected_calibration_error(probs=probs, y_true=y_true) == pytest.approx(0.0)


def test_ece_weights_bins_by_support() -> None:
    # Bin (0.9, 1.0]: 2 items at 0.95, both right -> gap 0.05. Bin (0.5, 0.6]: 2 items at 0.55, none right -> 0.55.
    probs = np.array([[0.95, 0.05], [0.05, 0.95], [0.55, 0.45], [0.45, 0.55]])
    y_true = np.array([0, 1, 1, 0])
    assert expected_calibration_error(probs=probs, y_true=y_true) == pytest.approx(0.5 * 0.05 + 0.5 * 0.55)


def test_ece_of_overconfident_model_is_large() -> None:
    probs = np.tile([0.99, 0.01], (100, 1))
    y_true = np.array([0] * 50 + [1] * 50)
    assert expected_calibration_error(probs=probs, y_true=y_true) == pytest.approx(0.49)


def test_ece_checks_shapes_and_handles_empty() -> None:
    with pytest.raises(ValueError):
        expected_calibration_error(probs=np.zeros((3, 2)), y_true=np.zeros(2))
    assert expected_calibration_error(probs=np.zeros((0, 2)), y_true=np.zeros(0)) == 0.0

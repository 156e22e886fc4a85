from __future__ import annotations

from pathlib import Path
from typing import Any

from service.bench.student import plot_learning_curve, student_table


def _results(with_teacher: bool) -> dict[str, Any]:
    results: dict[str, Any] = {
        "data": "builtin:sms_spam",
        "trained_on": "teacher labels",
        "curve": [
            {"n_train": 50, "accuracy": 0.9, "macro_f1": 0.8, "ece": 0.05, "epochs_run": 4, "train_s": 12.5},
            {"n_train": 400, "accuracy": 0.98, "macro_f1": 0.96, "ece": 0.02, "epochs_run": 5, "train_s": 80.0},
        ],
        "student": {"macro_f1": 0.96, "accuracy": 0.98, "items_per_s": 640.0, "cost_per_1000_usd": 0.0000347},
    }
    if with_teacher:
        results["teacher"] = {"macro_f1": 0.92, "accuracy": 0.95, "items_per_s": 12.0, "cost_per_1000_usd": 0.00185}
        results["speed_ratio"] = 640.0 / 12.0
    return results


def test_table_lists_curve_and_both_models() -> None:
    table = student_table(_results(with_teacher=True))
    assert "| 400 | 0.980 | 0.960 | 0.020 | 5 | 80.0 |" in table
    assert "| student | 0.960 | 0.980 | 640 | 0.000035 |" in table
    assert "| teacher | 0.920 | 0.950 | 12.0 | 0.001850 |" in table
    assert "53.3x" in table


def test_table_without_teacher_has_no_teacher_row() -> None:
    table = student_table(_results(with_teacher=False))
    assert "| teacher" not in table and "ratio" not in table


def test_plot_writes_a_png(tmp_path: Path) -> None:
    out = tmp_path / "curve.png"
    plot_learning_curve(_results(with_teacher=True), out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

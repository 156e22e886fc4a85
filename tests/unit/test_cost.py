"""The cost report's arithmetic: pricing by where a model ran, reviewers' working time, the student's saving."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service.pipeline.cost import FIRST_ANSWER_S, Prices, StageUsage, cost_report, review_seconds

PRICES = Prices(cpu_hour_usd=0.04, gpu_hour_usd=3.6, server_hour_usd=7.2, reviewer_hour_usd=36.0)
T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def _at(*seconds: float) -> list[datetime]:
    return [T0 + timedelta(seconds=s) for s in seconds]


def test_review_time_counts_working_gaps_and_the_median_gap_after_a_break() -> None:
    # Gaps 10, 10, 490 (a break), 10: the first answer and the one after the break count the median gap, 10.
    assert review_seconds(_at(500, 0, 10, 20, 510)) == pytest.approx(50.0)
    assert review_seconds(_at(0)) == FIRST_ANSWER_S
    assert review_seconds([]) == 0


def test_each_stage_is_priced_by_where_it_ran_and_the_reviewers_by_their_time() -> None:
    usage = [
        StageUsage("teacher", "server", items=100, answered=100, wall_s=36.0, cpu_s=1.0),
        StageUsage("teacher", "server", items=100, answered=100, wall_s=36.0, cpu_s=1.0),
        StageUsage("embedder", "cpu", items=1000, answered=0, wall_s=5.0, cpu_s=90.0),
        StageUsage("student", "cpu", items=800, answered=800, wall_s=4.0, cpu_s=9.0),
        StageUsage("training", "cpu", items=200, answered=0, wall_s=60.0, cpu_s=90.0),
    ]
    report = cost_report(
        usage=usage, answered_at={"ann": _at(0, 10, 20), "bob": _at(0)}, labeled=1000, imported=0, prices=PRICES
    )
    by = {(source.source, source.runs_on): source for source in report.sources}
    teacher = by["teacher", "server"]
    assert (teacher.items, teacher.seconds) == (200, 72.0), "rows of one stage add up"
    assert teacher.usd == pytest.approx(72 / 3600 * 7.2), "a server is priced by the wall seconds waited on it"
    assert by["embedder", "cpu"].usd == pytest.approx(90 / 3600 * 0.04), "the CPU by its CPU seconds"
    human = by["human", "people"]
    assert human.items == 4 and human.seconds == pytest.approx(30 + 30), "ann 10+10+10, bob a first answer"
    assert human.usd == pytest.approx(60 / 3600 * 36.0)
    assert report.total_usd == pytest.approx(sum(source.usd for source in report.sources))
    assert report.usd_per_1000_labeled == pytest.approx(report.total_usd)
    saving = report.student_saving
    assert saving is not None and saving.items == 800
    assert saving.teacher_usd_per_1000 == pytest.approx(teacher.usd / 200 * 1000)
    assert saving.student_usd == pytest.approx((9 + 90) / 3600 * 0.04), "scoring and training"
    assert saving.saved_usd == pytest.approx(800 * teacher.usd / 200 - saving.student_usd)


def test_no_saving_without_student_answers_or_a_teacher_to_compare_with() -> None:
    teacher = StageUsage("teacher", "gpu", items=10, answered=10, wall_s=1.0, cpu_s=0.1)
    escalated = StageUsage("student", "cpu", items=10, answered=0, wall_s=0.1, cpu_s=0.2)
    alone = StageUsage("student", "cpu", items=10, answered=10, wall_s=0.1, cpu_s=0.2)
    first = cost_report(usage=[teacher, escalated], answered_at={}, labeled=10, imported=0, prices=PRICES)
    assert first.student_saving is None and "no item on its own" in first.saving_note
    second = cost_report(usage=[alone], answered_at={}, labeled=10, imported=0, prices=PRICES)
    assert second.student_saving is None and "no teacher cost" in second.saving_note
    empty = cost_report(usage=[], answered_at={}, labeled=0, imported=0, prices=PRICES)
    assert empty.total_usd == 0 and empty.usd_per_1000_labeled is None and empty.sources == []

from __future__ import annotations

from dataclasses import dataclass

import pytest

from service.pipeline.train_plan import is_gold, plan_training

LABELS = ("ham", "spam")


@dataclass(frozen=True)
class Row:
    item_id: int
    text: str
    label: str
    source: str
    teacher_probs: tuple[float, ...] | None = None
    template_sha: str | None = None


def test_humans_weigh_more_and_teacher_probs_become_soft_targets() -> None:
    rows = [
        Row(1, "hi", "ham", "human", teacher_probs=(0.4, 0.6), template_sha="t1"),
        Row(2, "win", "spam", "teacher", teacher_probs=(0.1, 0.9), template_sha="t2"),
        Row(3, "ok", "ham", "student"),
        Row(4, "odd", "ham", "teacher", teacher_probs=(1.0,), template_sha="t1"),
    ]
    plan = plan_training(rows, labels=LABELS, gold_share=0.0, human_weight=3.0, machine_weight=0.5)
    by_text = {e.text: e for e in plan.train}
    assert by_text["hi"].weight == 3.0 and by_text["hi"].soft_target is None
    assert by_text["win"].weight == 0.5 and by_text["win"].soft_target == (0.1, 0.9)
    assert by_text["ok"].weight == 0.5 and by_text["ok"].soft_target is None
    # Probabilities over a different label set cannot be a soft target.
    assert by_text["odd"].soft_target is None
    assert plan.gold == []
    # The human row's template is not behind any machine label.
    assert plan.prompt_versions == ["t1", "t2"]


def test_gold_is_a_share_of_human_rows_only_and_never_trained_on() -> None:
    rows = [Row(i, f"h{i}", "ham", "human") for i in range(400)]
    rows += [Row(1000 + i, f"m{i}", "spam", "teacher") for i in range(100)]
    plan = plan_training(rows, labels=LABELS, seed=1, gold_share=0.25)
    assert 70 <= len(plan.gold) <= 130
    assert all(row.source == "human" for row in plan.gold)
    gold_texts = {row.text for row in plan.gold}
    assert not gold_texts & {e.text for e in plan.train}
    assert len(plan.train) + len(plan.gold) == 500


def test_gold_is_stable_as_data_grows_and_depends_on_seed() -> None:
    small = [Row(i, f"h{i}", "ham", "human") for i in range(200)]
    grown = [*small, *(Row(i, f"h{i}", "spam", "human") for i in range(200, 400))]
    first = {row.item_id for row in plan_training(small, labels=LABELS, seed=5).gold}
    second = {row.item_id for row in plan_training(grown, labels=LABELS, seed=5).gold}
    assert first == {i for i in second if i < 200}
    assert first != {row.item_id for row in plan_training(small, labels=LABELS, seed=6).gold}
    assert is_gold(7, seed=0, gold_share=1.0) and not is_gold(7, seed=0, gold_share=0.0)


def test_unknown_labels_are_left_out_and_weights_must_be_positive() -> None:
    plan = plan_training([Row(1, "x", "other", "teacher")], labels=LABELS)
    assert plan.train == [] and plan.gold == []
    with pytest.raises(ValueError):
        plan_training([], labels=LABELS, human_weight=0.0)

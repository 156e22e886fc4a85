"""Zero-shot predictions leave the calibration fit once few-shot prompts have been reviewed."""

from __future__ import annotations

from service.store.history import in_current_regime


def test_zero_shot_predictions_drop_out_once_few_shot_ones_exist() -> None:
    assert [in_current_regime(n, few_shot_seen=True) for n in (0, 4, 2, None)] == [False, True, True, True]


def test_all_zero_shot_or_unrecorded_are_kept() -> None:
    assert [in_current_regime(n, few_shot_seen=False) for n in (0, 0, None)] == [True, True, True]

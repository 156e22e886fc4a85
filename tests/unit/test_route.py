from dataclasses import replace

import pytest

from service.pipeline.policy import Policy
from service.pipeline.route import REASONS, RENAMED_REASONS, Decision, Signals, route, stored_reasons
from service.store.history import UNBIASED_REASONS, VETO_REASONS

POLICY = Policy(
    epsilon=0.05,
    delta=0.1,
    audit_share=0.05,
    threshold=0.9,
    min_reviews=30,
    ood_max=0.6,
    neighbour_max=0.5,
    fitted_on=200,
    error_bound=0.04,
)
CONFIDENT = Signals(confidence=0.97, margin=0.95)


def test_confident_item_is_accepted_without_reasons() -> None:
    assert route(signals=CONFIDENT, policy=POLICY, audit_draw=0.5) == Decision(accept=True, reasons=())


def test_cold_start_accepts_nothing() -> None:
    cold = replace(POLICY, threshold=None, error_bound=None, fitted_on=3)
    decision = route(signals=CONFIDENT, policy=cold, audit_draw=0.99)
    assert decision == Decision(accept=False, reasons=("cold_start",))


def test_cold_start_draws_only_at_or_above_the_candidates_floor() -> None:
    cold = replace(POLICY, threshold=None, error_bound=None, draw_floor=0.8)
    low = route(signals=Signals(confidence=0.79, margin=0.6), policy=cold, audit_draw=0.5)
    assert low == Decision(accept=False, reasons=("below_floor",))
    assert route(signals=Signals(confidence=0.8, margin=0.6), policy=cold, audit_draw=0.5).reasons == ("cold_start",)
    ended = replace(cold, uniform_draws=False)
    assert route(signals=CONFIDENT, policy=ended, audit_draw=0.5).reasons == ("no_certificate",)


def test_below_threshold_is_reported_as_such() -> None:
    decision = route(signals=Signals(confidence=0.89, margin=0.78), policy=POLICY, audit_draw=0.99)
    assert decision == Decision(accept=False, reasons=("below_threshold",))


def test_threshold_itself_is_accepted() -> None:
    assert route(signals=Signals(confidence=0.9, margin=0.8), policy=POLICY, audit_draw=0.99).accept


def test_every_reason_that_applied_is_reported_in_order() -> None:
    signals = Signals(
        confidence=0.5,
        margin=0.0,
        neighbour_disagreement=0.8,
        student_disagreement=True,
        ood_distance=0.9,
    )
    decision = route(signals=signals, policy=POLICY, audit_draw=0.99)
    assert decision.reasons == (
        "below_threshold",
        "neighbour_disagreement",
        "student_disagreement",
        "out_of_distribution",
    )
    assert not decision.accept
    assert set(decision.reasons) <= set(REASONS)


@pytest.mark.parametrize(
    ("signals", "reason"),
    [
        (replace(CONFIDENT, neighbour_disagreement=0.6), "neighbour_disagreement"),
        (replace(CONFIDENT, student_disagreement=True), "student_disagreement"),
        (replace(CONFIDENT, ood_distance=0.61), "out_of_distribution"),
    ],
)
def test_each_veto_alone_sends_a_confident_item_to_review(signals: Signals, reason: str) -> None:
    assert route(signals=signals, policy=POLICY, audit_draw=0.99) == Decision(accept=False, reasons=(reason,))


def test_signals_at_their_limits_or_absent_do_not_veto() -> None:
    at_limits = replace(
        CONFIDENT,
        neighbour_disagreement=0.5,
        student_disagreement=False,
        ood_distance=0.6,
    )
    assert route(signals=at_limits, policy=POLICY, audit_draw=0.99).accept


def test_audit_draw_below_share_sends_accepted_item_to_review() -> None:
    assert route(signals=CONFIDENT, policy=POLICY, audit_draw=0.049) == Decision(
        accept=False, reasons=("audit_sample",)
    )
    assert route(signals=CONFIDENT, policy=POLICY, audit_draw=0.05).accept


def test_audits_are_drawn_among_all_routed_items_once_a_threshold_is_certified() -> None:
    doubtful = Signals(confidence=0.2, margin=0.0, ood_distance=0.9)
    assert route(signals=doubtful, policy=POLICY, audit_draw=0.0).reasons == ("audit_sample",)
    cold = replace(POLICY, threshold=None, error_bound=None)
    assert route(signals=CONFIDENT, policy=cold, audit_draw=0.0).reasons == ("cold_start",)


def test_reasons_stored_under_an_old_name_read_back_under_the_new_one() -> None:
    assert stored_reasons(["low_margin", "audit_sample"]) == ["below_threshold", "audit_sample"]


def test_without_a_certificate_in_reach_items_wait_by_their_chance_of_being_wrong() -> None:
    stopped = replace(POLICY, threshold=None, error_bound=None, uniform_draws=False)
    assert route(signals=CONFIDENT, policy=stopped, audit_draw=0.0).reasons == ("no_certificate",)


def test_the_reasons_read_as_stored_were_never_renamed() -> None:
    """history.reviewed keeps reasons as stored (no renaming pass over 10k decisions); that holds only while the
    reasons it asks about have one name."""
    asked = UNBIASED_REASONS | VETO_REASONS
    assert asked.isdisjoint(RENAMED_REASONS) and asked.isdisjoint(RENAMED_REASONS.values())

"""Decisions: every outcome, reasons, and the displayed status never deciding."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.models import DisplayedStatus, EffectiveStatus, LoanDecision, Outcome
from streams.core.decision import decide, decide_score_unavailable, decide_without_history
from streams.core.scoring import DEFAULT_SCORECARD, Assessment, assess
from streams.core.state import fold_events
from tests.builders import NOW, asset, loan_request, repayment, ts


def open_assessment(available: str = "5000.00") -> Assessment:
    state = fold_events(
        None,
        [
            asset(event_id="inc", asset_type="income", value=20000, occurred_at=ts(5)),
            asset(event_id="dep", value=200000, occurred_at=ts(5)),
        ],
    )
    assert state is not None
    a = assess(state, NOW)
    assert a.status is EffectiveStatus.OPEN
    return replace(a, available_limit=Decimal(available))


def codes(decision: LoanDecision) -> list[str]:
    return [r.code for r in decision.reasons]


def test_approved_within_the_available_limit() -> None:
    d = decide(loan_request(amount="5000.00", displayed_status="open"), open_assessment(), NOW)
    assert d.outcome is Outcome.APPROVED
    assert d.approved_amount == Decimal("5000.00")
    assert d.reasons == []
    assert not d.overrides_displayed_status


def test_displayed_closed_but_live_open_is_approved_and_says_so() -> None:
    d = decide(loan_request(displayed_status="closed"), open_assessment(), NOW)
    assert d.outcome is Outcome.APPROVED
    assert d.overrides_displayed_status
    assert codes(d) == ["LIVE_STATUS_OPEN"]


def test_partial_approval_up_to_the_available_limit() -> None:
    d = decide(loan_request(amount="8000.00", displayed_status="open"), open_assessment(), NOW)
    assert d.outcome is Outcome.PARTIALLY_APPROVED
    assert d.approved_amount == Decimal("5000.00")
    assert codes(d)[0] == "LIMIT_EXCEEDED"


def test_declined_when_too_little_is_available() -> None:
    d = decide(loan_request(amount="8000.00"), open_assessment("50.00"), NOW)
    assert d.outcome is Outcome.DECLINED
    assert codes(d)[0] == "INSUFFICIENT_AVAILABLE_LIMIT"


def test_displayed_open_but_frozen_is_declined() -> None:
    state = fold_events(
        None,
        [repayment(event_id=f"ok{i}", occurred_at=ts(30 * i + 40)) for i in range(10)]
        + [repayment(event_id="late", occurred_at=ts(5), amount_paid=0, days_past_due=35)],
    )
    assert state is not None
    d = decide(loan_request(displayed_status="open"), assess(state, NOW), NOW)
    assert d.outcome is Outcome.DECLINED
    assert d.effective_status is EffectiveStatus.FROZEN
    assert d.overrides_displayed_status
    assert codes(d)[0] == "FROZEN_PAST_DUE"
    assert d.approved_amount == Decimal("0.00")


def test_closed_line_is_declined_with_adverse_factors() -> None:
    state = fold_events(
        None,
        [
            repayment(event_id=f"m{i}", occurred_at=ts(100 + i), amount_paid=0, days_past_due=20)
            for i in range(3)
        ],
    )
    assert state is not None
    a = assess(state, NOW)
    assert a.status is EffectiveStatus.CLOSED
    d = decide(loan_request(displayed_status="closed"), a, NOW)
    assert d.outcome is Outcome.DECLINED
    assert not d.overrides_displayed_status
    assert codes(d)[0] == "SCORE_BELOW_THRESHOLD"
    assert any(c.startswith("ADVERSE_") for c in codes(d))


def test_stale_score_goes_to_review() -> None:
    a = open_assessment()
    request = loan_request(requested_at=ts(0))
    stale = replace(a, score_as_of=request.requested_at - DEFAULT_SCORECARD.stale_after * 2)
    d = decide(request, stale, NOW)
    assert d.outcome is Outcome.REVIEW
    assert codes(d)[0] == "STALE_SCORE"
    assert not d.overrides_displayed_status


def test_no_history_and_unavailable_score_are_reviews_never_approvals() -> None:
    for d, code in (
        (decide_without_history(loan_request(), NOW), "NO_HISTORY"),
        (decide_score_unavailable(loan_request(), NOW), "SCORE_UNAVAILABLE"),
    ):
        assert d.outcome is Outcome.REVIEW
        assert codes(d) == [code]
        assert d.approved_amount == Decimal("0.00")
        assert d.score_as_of is None


def test_unknown_displayed_status_is_never_overridden() -> None:
    d = decide(loan_request(displayed_status="unknown"), open_assessment(), NOW)
    assert not d.overrides_displayed_status


@pytest.mark.parametrize("displayed", list(DisplayedStatus))
def test_displayed_status_never_changes_the_outcome(displayed: DisplayedStatus) -> None:
    a = open_assessment()
    base = decide(loan_request(displayed_status="unknown"), a, NOW)
    d = decide(loan_request(displayed_status=displayed.value), a, NOW)
    assert (d.outcome, d.approved_amount, d.score) == (
        base.outcome,
        base.approved_amount,
        base.score,
    )


@settings(max_examples=300, deadline=None)
@given(
    amount=st.integers(1, 500_000),
    available=st.integers(0, 300_000),
    status=st.sampled_from(list(EffectiveStatus)),
    displayed=st.sampled_from(list(DisplayedStatus)),
)
def test_every_non_approval_has_a_reason_and_amounts_are_consistent(
    amount: int, available: int, status: EffectiveStatus, displayed: DisplayedStatus
) -> None:
    a = replace(open_assessment(), status=status, available_limit=Decimal(available))
    d = decide(loan_request(amount=amount, displayed_status=displayed.value), a, NOW)
    if d.outcome is not Outcome.APPROVED:
        assert d.reasons
    assert Decimal(0) <= d.approved_amount <= d.requested_amount
    if d.outcome in (Outcome.APPROVED, Outcome.PARTIALLY_APPROVED):
        assert status is EffectiveStatus.OPEN
        assert d.approved_amount <= Decimal(available)
    else:
        assert d.approved_amount == 0

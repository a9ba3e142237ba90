"""Decisions under the default policy: outcomes, reasons, promotions, exceptions."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.models import DisplayedStatus, EffectiveStatus, InputEvent, LoanDecision, Outcome
from streams.core.decision import (
    decide,
    decide_score_unavailable,
    decide_without_history,
    status_reasons,
)
from streams.core.policy import load_default_policy
from streams.core.scoring import Assessment, LineStatus, assess
from streams.core.state import UserState, fold_events
from tests.builders import NOW, asset, loan_request, repayment, spending, ts
from tests.properties import examples

POLICY = load_default_policy()
PROMO = POLICY.promotions[0]


def open_assessment(available: str = "5000.00") -> Assessment:
    state = fold_events(
        None,
        [
            asset(event_id="inc", asset_type="income", value=20000, occurred_at=ts(5)),
            asset(event_id="dep", value=200000, occurred_at=ts(5)),
        ],
    )
    assert state is not None
    a = assess(state, NOW, POLICY)
    assert a.status is EffectiveStatus.OPEN
    return replace(a, available_limit=Decimal(available))


def codes(decision: LoanDecision) -> list[str]:
    return [r.code for r in decision.reasons]


def answer(
    request_doc: dict[str, object], state: UserState, line: LineStatus | None = None
) -> LoanDecision:
    request = loan_request(**request_doc)
    a = assess(state, request.requested_at, POLICY, line)
    baseline = assess(state, request.requested_at, POLICY, line, with_promotions=False)
    return decide(request, a, NOW, POLICY, without_promotion=baseline)


def test_approved_within_the_available_limit() -> None:
    d = decide(
        loan_request(amount="5000.00", displayed_status="open"), open_assessment(), NOW, POLICY
    )
    assert d.outcome is Outcome.APPROVED
    assert d.approved_amount == Decimal("5000.00")
    assert d.reasons == []
    assert not d.overrides_displayed_status
    assert d.policy_version == POLICY.version


def test_displayed_closed_but_live_open_is_approved_and_says_so() -> None:
    d = decide(loan_request(displayed_status="closed"), open_assessment(), NOW, POLICY)
    assert d.outcome is Outcome.APPROVED
    assert d.overrides_displayed_status
    assert codes(d) == ["LIVE_STATUS_OPEN"]


def test_reasons_carry_english_and_chinese() -> None:
    d = decide(
        loan_request(displayed_status="closed"), open_assessment(), NOW, POLICY, language="zh"
    )
    [r] = d.reasons
    assert r.text == r.texts["zh"]
    assert r.texts["en"].startswith("The live score")
    assert any("\u4e00" <= ch <= "\u9fff" for ch in r.texts["zh"])


def test_partial_approval_up_to_the_available_limit() -> None:
    d = decide(
        loan_request(amount="8000.00", displayed_status="open"), open_assessment(), NOW, POLICY
    )
    assert d.outcome is Outcome.PARTIALLY_APPROVED
    assert d.approved_amount == Decimal("5000.00")
    assert codes(d)[0] == "LIMIT_EXCEEDED"


def test_declined_when_too_little_is_available() -> None:
    d = decide(loan_request(amount="8000.00"), open_assessment("50.00"), NOW, POLICY)
    assert d.outcome is Outcome.DECLINED
    assert codes(d)[0] == "INSUFFICIENT_AVAILABLE_LIMIT"


def frozen_user() -> UserState:
    events: list[InputEvent] = [
        repayment(event_id=f"ok{i}", occurred_at=ts(30 * i + 40)) for i in range(10)
    ]
    events.append(repayment(event_id="late", occurred_at=ts(5), amount_paid=0, days_past_due=35))
    state = fold_events(None, events)
    assert state is not None
    return state


def test_displayed_open_but_frozen_is_declined() -> None:
    d = answer({"displayed_status": "open"}, frozen_user())
    assert d.outcome is Outcome.DECLINED
    assert d.effective_status is EffectiveStatus.FROZEN
    assert d.overrides_displayed_status
    assert codes(d)[0] == "FROZEN_PAST_DUE"
    assert d.approved_amount == Decimal("0.00")


def test_freezing_wins_over_a_promotion() -> None:
    inside = PROMO.starts_at + timedelta(days=2)
    state = frozen_user()
    shifted = replace(state, as_of=inside - timedelta(days=1))
    d = answer({"displayed_status": "open", "requested_at": inside.isoformat()}, shifted)
    assert d.outcome is Outcome.DECLINED
    assert codes(d)[0] == "FROZEN_PAST_DUE"


def borderline_user(as_of: datetime) -> UserState:
    """A user scoring between the promotion's lowered threshold and the standard one from
    before the promotion until after it: eight on-time repayments, about eight months of
    history, a verified income of 5,000 and a
    verified deposit of 20,000."""
    events: list[InputEvent] = [
        repayment(
            event_id=f"r{i}",
            occurred_at=(as_of - timedelta(days=30 * i)).isoformat(),
            outstanding_balance="0.00",
        )
        for i in range(8)
    ]
    events += [
        spending(event_id="s-old", occurred_at=(as_of - timedelta(days=200)).isoformat()),
        spending(event_id="s-new", occurred_at=(as_of - timedelta(days=3)).isoformat()),
        asset(
            event_id="inc",
            asset_type="income",
            value=5000,
            occurred_at=(as_of - timedelta(days=5)).isoformat(),
        ),
        asset(
            event_id="dep",
            asset_type="deposit",
            value=20000,
            occurred_at=(as_of - timedelta(days=5)).isoformat(),
        ),
    ]
    state = fold_events(None, events)
    assert state is not None
    return state


def test_a_promotion_applies_by_requested_at_only() -> None:
    as_of = PROMO.starts_at - timedelta(days=20)
    state = borderline_user(as_of)
    standard = POLICY.status.thresholds
    for moment in (as_of, PROMO.starts_at + timedelta(days=2), PROMO.ends_at + timedelta(days=1)):
        score = assess(state, moment, POLICY).score
        assert standard.reopen_at - PROMO.threshold_reduction <= score < standard.reopen_at
    line = LineStatus(EffectiveStatus.CLOSED, as_of)
    before = answer(
        {"requested_at": (PROMO.starts_at - timedelta(days=1)).isoformat()}, state, line
    )
    inside = answer(
        {"requested_at": (PROMO.starts_at + timedelta(days=2)).isoformat()}, state, line
    )
    after = answer({"requested_at": (PROMO.ends_at + timedelta(days=1)).isoformat()}, state, line)
    assert before.outcome is Outcome.DECLINED
    assert inside.outcome is Outcome.APPROVED
    assert "PROMOTION_APPLIED" in codes(inside)
    assert inside.overrides_displayed_status
    assert after.outcome is Outcome.DECLINED


def high_risk_user(income: int, verified: bool, deposit: int) -> UserState:
    """A repayment missed until 65 days past due, 100 days ago, puts the user in the
    high-risk segment (worst days past due in 12 months ≥ 60) without freezing the line."""
    events: list[InputEvent] = [
        repayment(
            event_id="m0",
            occurred_at=ts(100),
            amount_paid=0,
            days_past_due=65,
            outstanding_balance="3000.00",
        )
    ]
    events += [repayment(event_id=f"ok{i}", occurred_at=ts(30 * (i + 3))) for i in range(8)]
    events += [spending(event_id=f"s{i}", occurred_at=ts(30 * i + 2)) for i in range(6)]
    events.append(
        asset(
            event_id="inc", asset_type="income", value=income, verified=verified, occurred_at=ts(10)
        )
    )
    if deposit:
        events.append(asset(event_id="dep", value=deposit, verified=True, occurred_at=ts(10)))
    state = fold_events(None, events)
    assert state is not None
    return state


def test_an_exception_lifts_a_restrictive_segment_with_a_capped_limit() -> None:
    qualifying = high_risk_user(income=30000, verified=True, deposit=30000)
    peer = high_risk_user(income=6000, verified=False, deposit=0)
    a = assess(qualifying, NOW, POLICY)
    b = assess(peer, NOW, POLICY)
    assert a.segment == b.segment == "high_risk"
    assert a.exception is not None
    assert b.exception is None
    # The exception matters: without it the segment's own threshold would keep the line closed.
    segment = next(seg for seg in POLICY.segments if seg.name == "high_risk")
    assert a.score < segment.thresholds.reopen_at
    d_ok = answer({"amount": "5000.00", "displayed_status": "closed"}, qualifying)
    d_peer = answer({"amount": "5000.00", "displayed_status": "closed"}, peer)
    assert d_ok.outcome is Outcome.APPROVED
    assert "SEGMENT_EXCEPTION_HIGH_INCOME_LOW_DEBT" in codes(d_ok)
    assert d_ok.credit_limit <= POLICY.exceptions[0].limit_cap
    assert d_peer.outcome is Outcome.DECLINED
    assert "SEGMENT_HIGH_RISK" in codes(d_peer)


def test_dwell_blocks_a_reopening_and_says_so() -> None:
    state = fold_events(
        None,
        [
            asset(event_id="inc", asset_type="income", value=20000, occurred_at=ts(5)),
            asset(event_id="dep", value=200000, occurred_at=ts(5)),
        ],
    )
    assert state is not None
    just_closed = LineStatus(EffectiveStatus.CLOSED, NOW - timedelta(days=1))
    d = answer({"requested_at": NOW.isoformat()}, state, just_closed)
    assert d.outcome is Outcome.DECLINED
    assert codes(d)[0] == "STATUS_DWELL"


def test_closed_line_is_declined_with_adverse_factors() -> None:
    state = fold_events(
        None,
        [
            repayment(event_id=f"m{i}", occurred_at=ts(100 + i), amount_paid=0, days_past_due=20)
            for i in range(3)
        ],
    )
    assert state is not None
    d = answer({"displayed_status": "closed"}, state)
    assert d.outcome is Outcome.DECLINED
    assert not d.overrides_displayed_status
    assert codes(d)[0] == "SCORE_BELOW_THRESHOLD"
    assert any(c.startswith("ADVERSE_") for c in codes(d))


def test_stale_score_goes_to_review() -> None:
    a = open_assessment()
    request = loan_request(requested_at=ts(0))
    stale = replace(a, score_as_of=request.requested_at - timedelta(days=400))
    d = decide(request, stale, NOW, POLICY)
    assert d.outcome is Outcome.REVIEW
    assert codes(d)[0] == "STALE_SCORE"
    assert not d.overrides_displayed_status


def test_no_history_and_unavailable_score_are_reviews_never_approvals() -> None:
    for d, code in (
        (decide_without_history(loan_request(), NOW, POLICY), "NO_HISTORY"),
        (decide_score_unavailable(loan_request(), NOW, POLICY), "SCORE_UNAVAILABLE"),
    ):
        assert d.outcome is Outcome.REVIEW
        assert codes(d) == [code]
        assert d.approved_amount == Decimal("0.00")
        assert d.score_as_of is None


def test_unknown_displayed_status_is_never_overridden() -> None:
    d = decide(loan_request(displayed_status="unknown"), open_assessment(), NOW, POLICY)
    assert not d.overrides_displayed_status


@pytest.mark.parametrize("displayed", list(DisplayedStatus))
def test_displayed_status_never_changes_the_outcome(displayed: DisplayedStatus) -> None:
    a = open_assessment()
    base = decide(loan_request(displayed_status="unknown"), a, NOW, POLICY)
    d = decide(loan_request(displayed_status=displayed.value), a, NOW, POLICY)
    assert (d.outcome, d.approved_amount, d.score) == (
        base.outcome,
        base.approved_amount,
        base.score,
    )


def test_status_reasons_explain_each_status() -> None:
    assert status_reasons(open_assessment(), POLICY)[0].code == "SCORE_QUALIFIES"
    frozen = assess(frozen_user(), NOW, POLICY)
    assert status_reasons(frozen, POLICY)[0].code == "FROZEN_PAST_DUE"


@settings(max_examples=examples(300), deadline=None)
@given(
    amount=st.integers(1, 500_000),
    available=st.integers(0, 300_000),
    status=st.sampled_from(list(EffectiveStatus)),
    displayed=st.sampled_from(list(DisplayedStatus)),
)
def test_every_non_approval_has_a_reason_and_amounts_are_consistent(
    amount: int, available: int, status: EffectiveStatus, displayed: DisplayedStatus
) -> None:
    base = open_assessment()
    a = replace(base, line=LineStatus(status, base.line.since), available_limit=Decimal(available))
    d = decide(loan_request(amount=amount, displayed_status=displayed.value), a, NOW, POLICY)
    if d.outcome is not Outcome.APPROVED:
        assert d.reasons
    assert Decimal(0) <= d.approved_amount <= d.requested_amount
    if d.outcome in (Outcome.APPROVED, Outcome.PARTIALLY_APPROVED):
        assert status is EffectiveStatus.OPEN
        assert d.approved_amount <= Decimal(available)
    else:
        assert d.approved_amount == 0


def test_promotion_window_is_half_open() -> None:
    assert PROMO.active_at(PROMO.starts_at)
    assert not PROMO.active_at(PROMO.ends_at)
    assert PROMO.starts_at.tzinfo is not None
    assert PROMO.ends_at < datetime(2026, 11, 28, tzinfo=UTC)

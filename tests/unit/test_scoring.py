"""Scorecard, limits and status: bins, bounds and monotonicity."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.models import EffectiveStatus, InputEvent
from streams.core.scoring import (
    DEFAULT_SCORECARD,
    SCORE_MAX,
    SCORE_MIN,
    Features,
    adverse_factors,
    assess,
    credit_limit,
    effective_status,
    score_features,
)
from streams.core.state import fold_events
from tests.builders import NOW, asset, repayment, ts

CARD = DEFAULT_SCORECARD


def features(**overrides: object) -> Features:
    base = Features(
        at=NOW,
        on_time_repayments=0.0,
        late_repayments=0.0,
        missed_repayments=0.0,
        worst_days_past_due_12m=0,
        days_since_serious_delinquency=None,
        outstanding_debt=Decimal(0),
        monthly_income=None,
        income_verified=False,
        debt_to_income=None,
        verified_assets=Decimal(0),
        unverified_assets=Decimal(0),
        average_monthly_spend_6m=Decimal(0),
        active_spend_months_6m=0,
        history_months=0.0,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def score(f: Features) -> int:
    return score_features(f, CARD)[0]


def test_best_and_worst_profiles_hit_the_bounds() -> None:
    best = features(
        on_time_repayments=30.0,
        debt_to_income=0.0,
        monthly_income=Decimal(9000),
        income_verified=True,
        verified_assets=Decimal(10**6),
        unverified_assets=Decimal(10**6),
        active_spend_months_6m=6,
        history_months=60.0,
    )
    worst = features(
        late_repayments=9.0, missed_repayments=9.0, worst_days_past_due_12m=120, debt_to_income=5.0
    )
    assert score(best) == SCORE_MAX
    assert score(worst) == SCORE_MIN


def test_every_attribute_has_a_positive_or_zero_maximum() -> None:
    assert all(a.max_points >= 0 for a in CARD.attributes)
    assert CARD.base_points + sum(a.max_points for a in CARD.attributes) == SCORE_MAX


feature_strategy = st.builds(
    features,
    on_time_repayments=st.floats(0, 40),
    late_repayments=st.floats(0, 10),
    missed_repayments=st.floats(0, 10),
    worst_days_past_due_12m=st.integers(0, 200),
    debt_to_income=st.none() | st.floats(0, 5),
    verified_assets=st.integers(0, 10**6).map(Decimal),
    unverified_assets=st.integers(0, 10**6).map(Decimal),
    active_spend_months_6m=st.integers(0, 6),
    history_months=st.floats(0, 100),
)


@settings(max_examples=300)
@given(f=feature_strategy, more=st.floats(0, 20))
def test_more_on_time_repayments_never_lower_the_score(f: Features, more: float) -> None:
    assert score(replace(f, on_time_repayments=f.on_time_repayments + more)) >= score(f)


@settings(max_examples=300)
@given(f=feature_strategy, more=st.integers(0, 10**6))
def test_more_verified_assets_never_lower_the_score(f: Features, more: int) -> None:
    assert score(replace(f, verified_assets=f.verified_assets + more)) >= score(f)


@settings(max_examples=300)
@given(f=feature_strategy, more=st.integers(0, 200))
def test_more_days_past_due_never_raise_the_score(f: Features, more: int) -> None:
    assert score(replace(f, worst_days_past_due_12m=f.worst_days_past_due_12m + more)) <= score(f)


@settings(max_examples=300)
@given(f=feature_strategy, dti=st.floats(0, 5), more=st.floats(0, 5))
def test_higher_debt_to_income_never_raises_the_score(f: Features, dti: float, more: float) -> None:
    low = replace(f, debt_to_income=dti)
    high = replace(f, debt_to_income=dti + more)
    assert score(high) <= score(low)


@settings(max_examples=200, deadline=None)
@given(n_on_time=st.integers(0, 12), n_missed=st.integers(0, 4))
def test_folded_on_time_repayments_never_lower_the_score(n_on_time: int, n_missed: int) -> None:
    missed: list[InputEvent] = [
        repayment(event_id=f"m{i}", occurred_at=ts(300 + i), amount_paid=0, days_past_due=10)
        for i in range(n_missed)
    ]
    on_time: list[InputEvent] = [
        repayment(event_id=f"o{i}", occurred_at=ts(30 * i + 1)) for i in range(n_on_time)
    ]
    income: list[InputEvent] = [
        asset(event_id="inc", asset_type="income", value=5000, occurred_at=ts(400))
    ]
    without = fold_events(None, missed + income)
    with_more = fold_events(None, missed + income + on_time)
    assert without is not None and with_more is not None
    assert assess(with_more, NOW).score >= assess(without, NOW).score


def test_status_thresholds() -> None:
    f = features()
    assert effective_status(f, CARD.open_threshold, CARD) is EffectiveStatus.OPEN
    assert effective_status(f, CARD.open_threshold - 1, CARD) is EffectiveStatus.CLOSED
    recent = replace(f, days_since_serious_delinquency=10.0)
    assert effective_status(recent, SCORE_MAX, CARD) is EffectiveStatus.FROZEN
    days = CARD.freeze_window / timedelta(days=1)
    old = replace(f, days_since_serious_delinquency=days + 1)
    assert effective_status(old, SCORE_MAX, CARD) is EffectiveStatus.OPEN


def test_limit_is_zero_unless_open_and_within_bounds() -> None:
    f = features(monthly_income=Decimal(10000), income_verified=True)
    assert credit_limit(f, 900, EffectiveStatus.CLOSED, CARD) == Decimal("0.00")
    assert credit_limit(f, 900, EffectiveStatus.FROZEN, CARD) == Decimal("0.00")
    at_threshold = credit_limit(f, CARD.open_threshold, EffectiveStatus.OPEN, CARD)
    at_max = credit_limit(f, SCORE_MAX, EffectiveStatus.OPEN, CARD)
    assert at_threshold == Decimal("10000.00")
    assert at_max == Decimal("60000.00")
    assert credit_limit(features(), 700, EffectiveStatus.OPEN, CARD) == CARD.limit_min
    rich = features(verified_assets=Decimal(10**9))
    assert credit_limit(rich, 950, EffectiveStatus.OPEN, CARD) == CARD.limit_max


def test_unverified_income_counts_half() -> None:
    verified = features(monthly_income=Decimal(10000), income_verified=True)
    unverified = replace(verified, income_verified=False)
    v = credit_limit(verified, 600, EffectiveStatus.OPEN, CARD)
    u = credit_limit(unverified, 600, EffectiveStatus.OPEN, CARD)
    assert u == v / 2


@pytest.mark.parametrize("score_value", [600, 623, 777, 950])
def test_limits_are_rounded_down_to_hundreds(score_value: int) -> None:
    f = features(
        monthly_income=Decimal("12345.67"), income_verified=True, verified_assets=Decimal("333.33")
    )
    limit = credit_limit(f, score_value, EffectiveStatus.OPEN, CARD)
    assert limit % 100 == 0


def test_available_limit_subtracts_outstanding_debt_and_is_never_negative() -> None:
    state = fold_events(
        None,
        [
            asset(event_id="inc", asset_type="income", value=10000, occurred_at=ts(2)),
            repayment(event_id="r", outstanding_balance="999999.00", occurred_at=ts(1)),
        ],
    )
    assert state is not None
    a = assess(state, NOW)
    assert a.available_limit == max(Decimal(0), a.credit_limit - Decimal("999999.00"))


def test_adverse_factors_are_largest_shortfalls_first() -> None:
    state = fold_events(None, [repayment(event_id="m", amount_paid=0, days_past_due=45)])
    assert state is not None
    names = [a.name for a in adverse_factors(assess(state, NOW), CARD)]
    assert names[0] == "worst_days_past_due_12m"
    assert len(names) == 3

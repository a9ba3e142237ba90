"""The shipped scorecard in assess, limits, segments, status hysteresis under the default policy."""

from __future__ import annotations

import itertools
from dataclasses import fields, replace
from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.models import EffectiveStatus, InputEvent
from streams.core.features import SCORE_MAX, SCORE_MIN, Features
from streams.core.policy import Thresholds, load_default_policy
from streams.core.scorecard import load_default_scorecard
from streams.core.scoring import (
    LineStatus,
    assess,
    credit_limit,
    next_line_status,
    segment_of,
)
from streams.core.state import fold_events
from tests.builders import NOW, asset, repayment, ts
from tests.properties import examples

POLICY = load_default_policy()
CARD = load_default_scorecard()
STANDARD = POLICY.status.thresholds


def features(**overrides: object) -> Features:
    base = Features(
        at=NOW,
        on_time_repayments=0.0,
        late_repayments=0.0,
        missed_repayments=0.0,
        worst_days_past_due_12m=0,
        outstanding_debt=Decimal(0),
        monthly_income=None,
        verified_monthly_income=Decimal(0),
        income_verification_level=0,
        debt_to_income=None,
        verified_assets=Decimal(0),
        unverified_assets=Decimal(0),
        average_monthly_spend_6m=Decimal(0),
        active_spend_months_6m=0,
        history_months=12.0,
        days_since_delinquency={},
        last_delinquency_at={},
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def score(f: Features) -> int:
    return CARD.evaluate(f).score


def test_best_and_worst_profiles_hit_the_bounds() -> None:
    best = features(
        on_time_repayments=30.0,
        debt_to_income=0.0,
        monthly_income=Decimal(9000),
        verified_monthly_income=Decimal(10**6),
        income_verification_level=2,
        verified_assets=Decimal(10**6),
        unverified_assets=Decimal(10**6),
        active_spend_months_6m=6,
        history_months=60.0,
    )
    worst = features(
        late_repayments=9.0,
        missed_repayments=9.0,
        worst_days_past_due_12m=120,
        debt_to_income=5.0,
        history_months=0.0,
    )
    assert score(best) == min(SCORE_MAX, CARD.max_score_points)
    assert score(worst) == max(SCORE_MIN, CARD.min_score_points)
    assert SCORE_MIN <= score(worst) < POLICY.status.thresholds.close_below
    assert score(best) > POLICY.status.thresholds.reopen_at


def test_assess_scores_with_the_shipped_card_unless_given_another() -> None:
    from streams.core.scorecard import load_expert_scorecard

    state = fold_events(None, [repayment(event_id="r")])
    assert state is not None
    shipped, expert = assess(state, NOW, POLICY), load_expert_scorecard()
    scored = CARD.evaluate(shipped.features)
    assert (shipped.score, shipped.scorecard_version) == (scored.score, CARD.version)
    assert shipped.pd == scored.pd == CARD.pd_of(scored.score)
    other = assess(state, NOW, POLICY, card=expert)
    assert (other.score, other.scorecard_version) == (
        expert.evaluate(shipped.features).score,
        expert.version,
    )


feature_strategy = st.builds(
    features,
    on_time_repayments=st.floats(0, 40),
    late_repayments=st.floats(0, 10),
    missed_repayments=st.floats(0, 10),
    worst_days_past_due_12m=st.integers(0, 200),
    debt_to_income=st.none() | st.floats(0, 5),
    verified_assets=st.integers(0, 10**6).map(Decimal),
    unverified_assets=st.integers(0, 10**6).map(Decimal),
    income_verification_level=st.integers(0, 2),
    active_spend_months_6m=st.integers(0, 6),
    history_months=st.floats(0, 100),
)


@settings(max_examples=examples(300))
@given(f=feature_strategy, more=st.floats(0, 20))
def test_more_on_time_repayments_never_lower_the_score(f: Features, more: float) -> None:
    assert score(replace(f, on_time_repayments=f.on_time_repayments + more)) >= score(f)


@settings(max_examples=examples(300))
@given(f=feature_strategy, more=st.integers(0, 10**6))
def test_more_verified_assets_never_lower_the_score(f: Features, more: int) -> None:
    assert score(replace(f, verified_assets=f.verified_assets + more)) >= score(f)


@settings(max_examples=examples(300))
@given(f=feature_strategy, more=st.integers(0, 200))
def test_more_days_past_due_never_raise_the_score(f: Features, more: int) -> None:
    assert score(replace(f, worst_days_past_due_12m=f.worst_days_past_due_12m + more)) <= score(f)


@settings(max_examples=examples(300))
@given(f=feature_strategy, dti=st.floats(0, 5), more=st.floats(0, 5))
def test_higher_debt_to_income_never_raises_the_score(f: Features, dti: float, more: float) -> None:
    low = replace(f, debt_to_income=dti)
    high = replace(f, debt_to_income=dti + more)
    assert score(high) <= score(low)


@settings(max_examples=examples(200), deadline=None)
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
    assert assess(with_more, NOW, POLICY).score >= assess(without, NOW, POLICY).score


# ---- line status: hysteresis, dwell, freezing ----------------------------------------------
BAND = Thresholds(close_below=580, reopen_at=620)
DWELL = timedelta(days=7)
T0 = NOW - timedelta(days=60)


def step(
    previous: LineStatus | None, score_value: int, days: float, frozen: bool = False
) -> LineStatus:
    return next_line_status(
        previous,
        frozen=frozen,
        score=score_value,
        thresholds=BAND,
        at=T0 + timedelta(days=days),
        min_dwell=DWELL,
    )


def test_a_new_line_opens_only_at_the_reopen_threshold() -> None:
    assert step(None, 620, 0).status is EffectiveStatus.OPEN
    assert step(None, 619, 0).status is EffectiveStatus.CLOSED


def test_inside_the_band_nothing_changes() -> None:
    opened = step(None, 700, 0)
    closed = step(None, 500, 0)
    for s in (580, 600, 619):
        assert step(opened, s, 30) == opened
    for s in (580, 600, 619):
        assert step(closed, s, 30) == closed


def test_the_first_status_is_provisional_so_the_first_change_need_not_wait() -> None:
    first = step(None, 500, 0)
    assert not first.settled
    changed = step(first, 700, 0.5)
    assert (changed.status, changed.settled) == (EffectiveStatus.OPEN, True)


def test_changes_wait_for_the_dwell_time() -> None:
    opened = step(step(None, 500, 0), 700, 0)
    assert step(opened, 500, 6.9) == opened
    closed = step(opened, 500, 7)
    assert (closed.status, closed.since) == (EffectiveStatus.CLOSED, T0 + timedelta(days=7))
    assert step(closed, 800, 13) == closed
    assert step(closed, 800, 14).status is EffectiveStatus.OPEN


def test_freezing_is_immediate_and_leaving_it_is_not_dwell_limited() -> None:
    opened = step(None, 700, 0)
    frozen = step(opened, 900, 1, frozen=True)
    assert frozen.status is EffectiveStatus.FROZEN
    assert step(frozen, 900, 2, frozen=True) == frozen  # stays frozen, since unchanged
    assert step(frozen, 900, 3).status is EffectiveStatus.OPEN
    assert step(frozen, 600, 3).status is EffectiveStatus.CLOSED


@settings(max_examples=examples(300))
@given(
    scores=st.lists(st.integers(350, 950), min_size=2, max_size=60), gap_hours=st.integers(1, 96)
)
def test_at_most_one_change_per_dwell_time(scores: list[int], gap_hours: int) -> None:
    line = None
    changes = []
    for i, s in enumerate(scores):
        new = next_line_status(
            line,
            frozen=False,
            score=s,
            thresholds=BAND,
            at=T0 + timedelta(hours=gap_hours * i),
            min_dwell=DWELL,
        )
        if line is not None and new.status is not line.status:
            changes.append(new.since)
        line = new
    assert all(b - a >= DWELL for a, b in itertools.pairwise(changes))


# ---- segments, exceptions, promotions, limits ----------------------------------------------
def test_segments_are_matched_in_order() -> None:
    assert segment_of(features(worst_days_past_due_12m=75), POLICY) == "high_risk"
    assert segment_of(features(debt_to_income=0.9), POLICY) == "high_debt_to_income"
    assert segment_of(features(history_months=1.0), POLICY) == "thin_file"
    assert segment_of(features(history_months=1.0, on_time_repayments=2.0), POLICY) == "standard"
    both = features(worst_days_past_due_12m=75, debt_to_income=0.9)
    assert segment_of(both, POLICY) == "high_risk"


def test_limit_is_zero_unless_open_and_within_bounds() -> None:
    f = features(monthly_income=Decimal(10000), income_verification_level=2)
    for status in (EffectiveStatus.CLOSED, EffectiveStatus.FROZEN):
        assert credit_limit(f, 900, status, STANDARD, POLICY) == Decimal("0.00")
    at_reopen = credit_limit(f, STANDARD.reopen_at, EffectiveStatus.OPEN, STANDARD, POLICY)
    at_max = credit_limit(f, SCORE_MAX, EffectiveStatus.OPEN, STANDARD, POLICY)
    assert at_reopen == Decimal("20000.00")
    assert at_max == Decimal("60000.00")
    assert credit_limit(features(), 700, EffectiveStatus.OPEN, STANDARD, POLICY) == Decimal(
        "1000.00"
    )
    rich = features(verified_assets=Decimal(10**9))
    assert credit_limit(rich, 950, EffectiveStatus.OPEN, STANDARD, POLICY) == Decimal("300000.00")
    capped = credit_limit(rich, 950, EffectiveStatus.OPEN, STANDARD, POLICY, cap=Decimal(20000))
    assert capped == Decimal("20000.00")


def test_unverified_income_counts_half() -> None:
    verified = features(monthly_income=Decimal(10000), income_verification_level=2)
    unverified = replace(verified, income_verification_level=1)
    v = credit_limit(verified, STANDARD.reopen_at, EffectiveStatus.OPEN, STANDARD, POLICY)
    u = credit_limit(unverified, STANDARD.reopen_at, EffectiveStatus.OPEN, STANDARD, POLICY)
    assert u == v / 2


@pytest.mark.parametrize("score_value", [620, 623, 777, 950])
def test_limits_are_rounded_down_to_hundreds(score_value: int) -> None:
    f = features(
        monthly_income=Decimal("12345.67"),
        income_verification_level=2,
        verified_assets=Decimal("333.33"),
    )
    assert credit_limit(f, score_value, EffectiveStatus.OPEN, STANDARD, POLICY) % 100 == 0


def test_available_limit_subtracts_outstanding_debt_and_is_never_negative() -> None:
    state = fold_events(
        None,
        [
            asset(event_id="inc", asset_type="income", value=10000, occurred_at=ts(2)),
            repayment(event_id="r", outstanding_balance="999999.00", occurred_at=ts(1)),
        ],
    )
    assert state is not None
    a = assess(state, NOW, POLICY)
    assert a.available_limit == max(Decimal(0), a.credit_limit - Decimal("999999.00"))


def test_adverse_reasons_are_the_largest_point_shortfalls_first() -> None:
    state = fold_events(None, [repayment(event_id="m", amount_paid=0, days_past_due=45)])
    assert state is not None
    a = assess(state, NOW, POLICY)
    reasons = a.adverse_reasons()
    shortfalls = [
        CARD.characteristics[r.characteristic].max_points - a.points[r.characteristic]
        for r in reasons
    ]
    assert len(reasons) == 4
    assert shortfalls == sorted(shortfalls, reverse=True) and shortfalls[-1] > 0
    assert all(r.code == f"ADVERSE_{r.characteristic.upper()}" for r in reasons)
    # Nothing left out costs more than the last one named.
    named = {r.characteristic for r in reasons}
    assert all(
        c.max_points - a.points[name] <= shortfalls[-1]
        for name, c in CARD.characteristics.items()
        if name not in named
    )


def _values_by_reflection(f: Features) -> dict[str, float | None]:
    result: dict[str, float | None] = {}
    for field in fields(f):
        value = getattr(f, field.name)
        if value is None or isinstance(value, int | float | Decimal):
            result[field.name] = float(value) if value is not None else None
    return result


@settings(max_examples=examples(100), deadline=None)
@given(
    income=st.none() | st.decimals(0, 10**6, places=2),
    dti=st.none() | st.floats(0, 10),
    history=st.floats(0, 600),
    level=st.integers(0, 2),
)
def test_feature_values_are_every_numeric_field_in_order(
    income: Decimal | None, dti: float | None, history: float, level: int
) -> None:
    f = features(
        monthly_income=income,
        debt_to_income=dti,
        history_months=history,
        income_verification_level=level,
    )
    assert list(f.values().items()) == list(_values_by_reflection(f).items())

"""Labelled histories: point-in-time features are the worker's, nothing after ``as_of`` leaks
into them, and labels follow the bad definition."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.models import InputEvent, RepaymentEvent, SpendingEvent
from streams.core.features import derive_features
from streams.core.instants import to_micros
from streams.core.labels import (
    Label,
    Outcome,
    add_months,
    features_at,
    features_over_time,
    label_points,
    month_starts,
    months_after_micros,
    point_in_time_features,
)
from streams.core.policy import load_default_policy
from streams.core.timeline import advance, canonical, constant
from tests.scorecard_histories import AT, USER, histories

HORIZON = timedelta(days=1826)
POINTS = month_starts(AT - timedelta(days=900), AT)


@given(histories(), st.sampled_from(POINTS), st.sampled_from((HORIZON, timedelta(days=200))))
def test_point_in_time_features_are_the_workers(
    events: list[InputEvent], at: datetime, horizon: timedelta
) -> None:
    """At a month start (a review instant of the status machine) the features equal those of
    the fold ``timeline.advance`` keeps, bit for bit."""
    checkpoint = advance(canonical(events), constant(load_default_policy()), at, horizon)
    features = features_at(events, at, horizon)
    if checkpoint.at == at and checkpoint.state is not None:
        assert features == derive_features(checkpoint.state, at)
    else:  # no event in the window at ``at``: the worker has nothing to score either
        assert features is None


@given(histories(), st.lists(st.sampled_from(POINTS), min_size=1, max_size=6, unique=True))
def test_incremental_features_equal_features_from_scratch(
    events: list[InputEvent], instants: list[datetime]
) -> None:
    instants.sort()
    ordered = canonical(events)
    incremental = list(features_over_time(ordered, instants, timedelta(days=300)))
    assert incremental == [features_at(events, t, timedelta(days=300)) for t in instants]


@given(histories(), histories(), st.sampled_from(POINTS))
def test_events_after_as_of_never_change_a_labels_features(
    events: list[InputEvent], more: list[InputEvent], as_of: datetime
) -> None:
    """Adding any events after ``as_of`` (moved there, new ids) changes nothing at ``as_of``."""
    later: list[InputEvent] = [
        e.model_copy(
            update={
                "event_id": f"later-{i}",
                "occurred_at": as_of + (AT - e.occurred_at) + timedelta(microseconds=1),
            }
        )
        for i, e in enumerate(more)
    ]
    assert all(e.occurred_at > as_of for e in later)
    labels = [Label(USER, as_of, 0)]
    before = point_in_time_features(events, labels)
    after = point_in_time_features([*events, *later], labels)
    assert before == after
    assert before[0] == features_at(events, as_of)


def repayment(i: int, at: datetime, dpd: int, paid: bool = True) -> RepaymentEvent:
    return RepaymentEvent(
        event_id=f"r-{i}",
        user_id="u-1",
        occurred_at=at,
        loan_id="loan-1",
        amount_due=Decimal(100),
        amount_paid=Decimal(100 if paid else 0),
        days_past_due=dpd,
        outstanding_balance=Decimal(1000),
    )


START = datetime(2024, 1, 15, tzinfo=UTC)


def monthly(dpds: list[int]) -> list[InputEvent]:
    return [repayment(i, add_months(START, i), dpd, dpd == 0) for i, dpd in enumerate(dpds)]


def test_bad_is_90_days_past_due_within_12_months_after_the_point() -> None:
    # Months 0..23; 95 days past due at month 10 (2024-11-15).
    dpds = [0] * 10 + [95] + [0] * 13
    labelled = label_points(monthly(dpds), observed_until=datetime(2026, 1, 1, tzinfo=UTC))
    by_point = {label.as_of: label.bad for label in labelled.labels}
    # Points 2024-02-01 .. 2024-11-01 see the default within their 12 months: bad. From
    # 2024-12-01 the user is already in default (90+ within the 12 months before) and left out
    # until 2025-11-15; points after 2025-01-01 are immature (their 12 months end after the
    # data); before 2024-01-15 there is no history.
    assert by_point == {datetime(2024, month, 1, tzinfo=UTC): 1 for month in range(2, 12)}
    assert labelled.events and all(e.user_id == "u-1" for e in labelled.events)


def test_stale_and_indeterminate_rows_are_left_out() -> None:
    dpds = [0, 0, 45, 0]
    events = monthly(dpds)
    until = datetime(2027, 1, 1, tzinfo=UTC)
    default = label_points(events, observed_until=until)
    # The last event is 2024-04-15: points more than 180 days later are stale.
    assert max(label.as_of for label in default.labels) <= datetime(2024, 10, 12, tzinfo=UTC)
    assert all(label.bad == 0 for label in default.labels)
    strict = label_points(events, observed_until=until, outcome=Outcome(indeterminate_dpd=30))
    # Points before the 45-day delinquency are indeterminate (30–89 within the window).
    assert {label.as_of for label in strict.labels} < {label.as_of for label in default.labels}
    assert datetime(2024, 2, 1, tzinfo=UTC) not in {label.as_of for label in strict.labels}


def test_given_points_and_a_shorter_window() -> None:
    dpds = [0, 0, 0, 95]
    events: list[InputEvent] = [
        *monthly(dpds),
        SpendingEvent(
            event_id="s-1",
            user_id="u-2",
            occurred_at=START,
            amount=Decimal(10),
            category="groceries",
        ),
    ]
    points = [datetime(2024, 2, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC)]
    labelled = label_points(
        events,
        points=points,
        observed_until=datetime(2024, 12, 31, tzinfo=UTC),
        outcome=Outcome(window_months=1),
    )
    assert [(lab.user_id, lab.as_of.month, lab.bad) for lab in labelled.labels] == [
        ("u-1", 2, 0),
        ("u-1", 3, 0),
        ("u-2", 2, 0),
        ("u-2", 3, 0),
    ]
    quarterly = label_points(
        events,
        points=points,
        observed_until=datetime(2024, 12, 31, tzinfo=UTC),
        outcome=Outcome(window_months=3),
    )
    assert [(lab.user_id, lab.as_of.month, lab.bad) for lab in quarterly.labels][:2] == [
        ("u-1", 2, 1),
        ("u-1", 3, 1),
    ]


@given(
    st.datetimes(
        min_value=datetime(1990, 1, 1),
        max_value=datetime(2090, 1, 1),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=8)), timezone(-timedelta(hours=5))]
        ),
    ),
    st.integers(min_value=0, max_value=30),
)
def test_months_after_is_add_months_month_by_month(moment: datetime, count: int) -> None:
    expected = [to_micros(add_months(moment, k)) for k in range(1, count + 1)]
    assert months_after_micros(moment, count) == expected


@pytest.mark.parametrize("count", [7, 24])
def test_months_after_past_year_9999_raises_as_add_months_does(count: int) -> None:
    moment = datetime(9999, 6, 30, 23, 59, tzinfo=UTC)
    with pytest.raises(ValueError, match="out of range") as expected:
        add_months(moment, count)
    with pytest.raises(ValueError, match="out of range") as got:
        months_after_micros(moment, count)
    assert type(got.value) is type(expected.value)
    assert months_after_micros(moment, 6) == [to_micros(add_months(moment, k)) for k in range(1, 7)]


def test_calendar_helpers() -> None:
    assert add_months(datetime(2024, 1, 31, tzinfo=UTC), 1) == datetime(2024, 2, 29, tzinfo=UTC)
    assert add_months(datetime(2024, 3, 15, tzinfo=UTC), -14) == datetime(2023, 1, 15, tzinfo=UTC)
    assert month_starts(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC)) == [
        datetime(2024, m, 1, tzinfo=UTC) for m in (1, 2, 3)
    ]

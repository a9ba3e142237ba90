"""Hypothesis strategies for one user's history, for scorecard properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import strategies as st

from schemas.models import AssetEvent, AssetType, InputEvent, RepaymentEvent, SpendingEvent

AT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
USER = "u-h"

days_ago = st.floats(min_value=0.5, max_value=900, allow_nan=False)
money = st.integers(min_value=0, max_value=2_000_000).map(Decimal)
positive_money = st.integers(min_value=1, max_value=2_000_000).map(Decimal)


@st.composite
def repayments(draw: st.DrawFn, count: int) -> list[RepaymentEvent]:
    """Monthly-ish repayments on one or two loans, some late, some missed."""
    events = []
    for i in range(count):
        due = Decimal(draw(st.integers(1, 5000)))
        missed = draw(st.booleans())
        events.append(
            RepaymentEvent(
                event_id=f"r-{i}",
                user_id=USER,
                occurred_at=AT - timedelta(days=draw(days_ago)),
                loan_id=f"loan-{draw(st.integers(1, 2))}",
                amount_due=due,
                amount_paid=Decimal(0) if missed else due,
                days_past_due=draw(st.sampled_from((0, 0, 0, 3, 12, 35, 65, 95, 130))),
                outstanding_balance=draw(money),
            )
        )
    return events


@st.composite
def histories(
    draw: st.DrawFn, *, with_income: bool | None = None, wealth_types: int = 2
) -> list[InputEvent]:
    """A user's events: repayments, spending, wealth assets of the first ``wealth_types``
    types (deposit, investment), verified or not, and an income (``with_income`` True:
    always, False: never, None: maybe)."""
    events: list[InputEvent] = list(draw(repayments(draw(st.integers(0, 14)))))
    for i in range(draw(st.integers(0, 6))):
        events.append(
            SpendingEvent(
                event_id=f"s-{i}",
                user_id=USER,
                occurred_at=AT - timedelta(days=draw(days_ago)),
                amount=draw(positive_money),
                category="groceries",
            )
        )
    kinds = (AssetType.DEPOSIT, AssetType.INVESTMENT)[:wealth_types]
    for i in range(draw(st.integers(0, 3))):
        events.append(
            AssetEvent(
                event_id=f"a-{i}",
                user_id=USER,
                occurred_at=AT - timedelta(days=draw(days_ago)),
                asset_type=draw(st.sampled_from(kinds)) if kinds else AssetType.PROPERTY,
                value=draw(money),
                verified=draw(st.booleans()),
            )
        )
    income = draw(st.booleans()) if with_income is None else with_income
    if income:
        events.append(income_event(draw(positive_money), draw(st.booleans()), draw(days_ago)))
    if not events:
        events.append(income_event(Decimal(5000), True, 10, "a-only"))
    return events


def income_event(
    value: Decimal, verified: bool, ago: float, event_id: str = "a-income"
) -> AssetEvent:
    """A monthly income snapshot."""
    return AssetEvent(
        event_id=event_id,
        user_id=USER,
        occurred_at=AT - timedelta(days=ago),
        asset_type=AssetType.INCOME,
        value=value,
        verified=verified,
    )

"""Seeded user histories whose scores cross the status thresholds in both directions."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import Decimal

from schemas.models import (
    AssetEvent,
    AssetType,
    DisplayedStatus,
    InputEvent,
    LoanRequest,
    RepaymentEvent,
    SpendingEvent,
)


def crossing_history(user: str, end: datetime, rng: random.Random) -> list[InputEvent]:
    """About a dozen events over ten months: income, monthly repayments that are sometimes
    late, missed or seriously past due (a freeze), deposits that come and go, some spending.
    The score moves up and down through the close/reopen band."""
    events: list[InputEvent] = []
    sequence = 0

    def next_id(kind: str) -> str:
        nonlocal sequence
        sequence += 1
        return f"{user}:{kind}:{sequence}"

    def ago(days: float) -> datetime:
        return end - timedelta(days=days, seconds=rng.randint(0, 86_399))

    verified = rng.random() < 0.7
    income = Decimal(rng.randint(4, 25) * 1000)
    events.append(
        AssetEvent(
            event_id=next_id("inc"),
            user_id=user,
            occurred_at=ago(300),
            asset_type=AssetType.INCOME,
            value=income,
            verified=verified,
        )
    )
    due = Decimal(rng.randint(5, 30) * 100)
    balance = due * rng.randint(10, 60)
    for month in range(10, 0, -1):
        roll = rng.random()
        if roll < 0.08:
            paid, dpd = Decimal(0), 35  # seriously past due: a freeze
        elif roll < 0.2:
            paid, dpd = Decimal(0), rng.randint(0, 25)  # missed
        elif roll < 0.35:
            paid, dpd = due, rng.randint(3, 28)  # late
        else:
            paid, dpd = due, 0
            balance = max(Decimal(0), balance - due)
        events.append(
            RepaymentEvent(
                event_id=next_id("rep"),
                user_id=user,
                occurred_at=ago(30 * month),
                loan_id=f"{user}-loan",
                amount_due=due,
                amount_paid=paid,
                days_past_due=dpd,
                outstanding_balance=balance,
            )
        )
    for _ in range(rng.randint(1, 3)):  # a deposit proof that comes and goes
        events.append(
            AssetEvent(
                event_id=next_id("dep"),
                user_id=user,
                occurred_at=ago(rng.randint(5, 280)),
                asset_type=AssetType.DEPOSIT,
                value=Decimal(rng.choice((0, 0, 30_000, 120_000, 600_000))),
                verified=rng.random() < 0.8,
            )
        )
    for _ in range(rng.randint(0, 4)):
        events.append(
            SpendingEvent(
                event_id=next_id("spend"),
                user_id=user,
                occurred_at=ago(rng.randint(2, 200)),
                amount=Decimal(rng.randint(1000, 90_000)) / 100,
                category="groceries",
            )
        )
    return events


def crossing_population(
    users: int, seed: int, end: datetime, prefix: str = "x"
) -> dict[str, list[InputEvent]]:
    """``users`` crossing histories by user id (the same seed gives the same histories)."""
    rng = random.Random(seed)
    return {
        f"{prefix}-{i:05d}": crossing_history(f"{prefix}-{i:05d}", end, rng) for i in range(users)
    }


def request_for(user: str, at: datetime, rng: random.Random, sequence: int = 1) -> LoanRequest:
    """A loan request of ``user`` at ``at`` with a random amount and displayed status."""
    return LoanRequest(
        request_id=f"{user}:q:{sequence}",
        user_id=user,
        requested_at=at,
        amount=Decimal(rng.randint(5, 200) * 100),
        term_months=12,
        displayed_status=rng.choice(list(DisplayedStatus)),
    )

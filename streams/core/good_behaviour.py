"""Months of good behaviour, simulated: the events a user would send if every instalment were
paid on time and the account used each month, and the features they would lead to. Pure.

A declined request's path back (:mod:`streams.core.path_back`) folds up to 24 such months
into the user's state — exactly as the worker would fold them
(:func:`streams.core.state.fold_events`): decay, the 12-month window and the history length
move as they would for real.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from schemas.models import InputEvent, RepaymentEvent, SpendingEvent
from streams.core import compiled
from streams.core.features import feature_values
from streams.core.labels import add_months, months_after_micros
from streams.core.scorecard import ScorecardDocument, Values
from streams.core.state import UserState, fold_events

_CENT = Decimal("0.01")
_ONE = Decimal("1.00")


def good_behaviour_events(state: UserState, at: datetime, months: int) -> list[InputEvent]:
    """The events of ``months`` months of good behaviour after ``at``: each month, an on-time
    instalment on every open loan (balance unchanged: a conservative debt) and one purchase."""
    good = _GoodMonths(state)
    return [e for k in range(1, months + 1) for e in good.month(k, add_months(at, k))]


def future_values(state: UserState, at: datetime, months: int) -> Iterator[Values]:
    """Feature values after k = 1, 2, … ``months`` months of good behaviour, month by month
    (the caller stops when it has seen enough)."""
    good = _GoodMonths(state)
    current = state
    for k in range(1, months + 1):
        # Each month's events fall a day before it ends, after the month before.
        end = add_months(at, k)
        folded = fold_events(current, good.month(k, end))
        assert folded is not None
        current = folded
        yield feature_values(current, end)


def future_bins(
    card: ScorecardDocument, state: UserState, at: datetime, months: int
) -> Iterator[Sequence[int | None]]:
    """``card.bins_of`` each month :func:`future_values` gives, month by month (every
    characteristic's bin, in the card's order): from the compiled machine when it can
    simulate them exactly (all ``months`` at once), else from the Python reference."""
    bins = compiled.good_month_bins(card, state, months_after_micros(at, months))
    if bins is None:
        return (card.bins_of(values) for values in future_values(state, at, months))
    return iter(bins)


class _GoodMonths:
    """The good-behaviour events of a user's months, each a day before its month ends.

    Built without validation (a path back folds ~20 months of them): every field is already
    in the form validation gives it — ids and amounts come from the validated state, the
    instant is put in UTC, amounts are whole cents (``tests/unit/test_path_back.py`` checks
    they equal the validated events). One event per open loan and one purchase are made once;
    each month copies them with its own ids and instant."""

    def __init__(self, state: UserState) -> None:
        user, start = state.user_id, state.as_of
        self._events: list[tuple[str, InputEvent]] = [
            (
                loan_id,
                RepaymentEvent.model_construct(
                    event_id="",
                    user_id=user,
                    occurred_at=start,
                    loan_id=loan_id,
                    amount_due=_CENT,
                    amount_paid=_CENT,
                    days_past_due=0,
                    outstanding_balance=loan.balance.quantize(_CENT),
                ),
            )
            for loan_id, loan in sorted(state.loans.items())
            if loan.balance > 0
        ]
        purchase = SpendingEvent.model_construct(
            event_id="",
            user_id=user,
            occurred_at=start,
            amount=_ONE,
            category="groceries",
            merchant_id=None,
        )
        self._events.append(("spend", purchase))

    def month(self, k: int, end: datetime) -> list[InputEvent]:
        """The events of month ``k``, which ends at ``end``."""
        moment = (end - timedelta(days=1)).astimezone(UTC)
        return [
            event.model_copy(
                update={"event_id": f"path-back:{k}:{name}"[:64], "occurred_at": moment}
            )
            for name, event in self._events
        ]

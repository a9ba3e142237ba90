"""What a scorecard and a policy look at: a user's features at one moment, derived from the
folded state. Pure; the score range (350–950) is the product's scale."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from streams.core.state import UserState, decay_factor, month_index

SCORE_MIN = 350
SCORE_MAX = 950
_DAYS_PER_MONTH = 30.4375
_WEALTH_TYPES = ("deposit", "investment", "property")
_CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Features:
    """What the policy looks at, evaluated at one moment (``at``)."""

    at: datetime
    on_time_repayments: float
    late_repayments: float
    missed_repayments: float
    worst_days_past_due_12m: int
    outstanding_debt: Decimal
    monthly_income: Decimal | None
    verified_monthly_income: Decimal
    income_verification_level: int
    debt_to_income: float | None
    verified_assets: Decimal
    unverified_assets: Decimal
    average_monthly_spend_6m: Decimal
    active_spend_months_6m: int
    history_months: float
    #: days past due level → days since the latest repayment at least that late.
    days_since_delinquency: Mapping[int, float]
    #: days past due level → when the latest repayment at least that late occurred (exact,
    #: so that a freeze ends at one instant, whoever computes it).
    last_delinquency_at: Mapping[int, datetime]

    def values(self) -> dict[str, float | None]:
        """Numeric features by name (what policy attributes and rules refer to), as floats,
        in field order (``test_review_step`` checks the names against the fields)."""
        holdings = _Holdings(
            debt=self.outstanding_debt,
            income=self.monthly_income,
            verified_income=self.verified_monthly_income,
            verification_level=self.income_verification_level,
            debt_to_income=self.debt_to_income,
            verified_assets=self.verified_assets,
            unverified_assets=self.unverified_assets,
        )
        return _as_values(
            (self.on_time_repayments, self.late_repayments, self.missed_repayments),
            _holdings_values(holdings),
            (
                self.worst_days_past_due_12m,
                self.average_monthly_spend_6m,
                self.active_spend_months_6m,
            ),
            self.history_months,
        )


def _as_values(
    decayed: tuple[float, float, float],
    holdings: dict[str, float | None],
    monthly: tuple[int, Decimal, int],
    history_months: float,
) -> dict[str, float | None]:
    on_time, late, missed = decayed
    worst, average_spend, active_months = monthly
    return {
        "on_time_repayments": float(on_time),
        "late_repayments": float(late),
        "missed_repayments": float(missed),
        "worst_days_past_due_12m": float(worst),
        **holdings,
        "average_monthly_spend_6m": float(average_spend),
        "active_spend_months_6m": float(active_months),
        "history_months": float(history_months),
    }


@dataclass(frozen=True, slots=True)
class _Holdings:
    """The features that depend on the state alone (not on the instant)."""

    debt: Decimal
    income: Decimal | None
    verified_income: Decimal
    verification_level: int
    debt_to_income: float | None
    verified_assets: Decimal
    unverified_assets: Decimal


def _holdings(state: UserState) -> _Holdings:
    debt = sum((loan.balance for loan in state.loans.values()), Decimal(0))
    income_snapshot = state.assets.get("income")
    income = income_snapshot.value if income_snapshot is not None else None
    verified_income = bool(income_snapshot and income_snapshot.verified and income)
    verified_assets = unverified_assets = Decimal(0)
    for asset_type, asset in state.assets.items():
        if asset_type in _WEALTH_TYPES:
            if asset.verified:
                verified_assets += asset.value
            else:
                unverified_assets += asset.value
    return _Holdings(
        debt=debt,
        income=income,
        verified_income=income if verified_income and income else Decimal(0),
        verification_level=(2 if verified_income else 1) if income else 0,
        debt_to_income=float(debt / (income * 12)) if income else None,
        verified_assets=verified_assets,
        unverified_assets=unverified_assets,
    )


def _monthly(state: UserState, now_month: int) -> tuple[int, Decimal, int]:
    """Worst days past due over 12 months, average spend and active months over 6."""
    recent_dpd = [
        dpd for month, dpd in state.delinquency_by_month.items() if month > now_month - 12
    ]
    recent_spend = [
        amount for month, amount in state.spend_by_month.items() if month > now_month - 6
    ]
    return (
        max(recent_dpd) if recent_dpd else 0,
        (sum(recent_spend, Decimal(0)) / 6).quantize(_CENT),
        sum(1 for amount in recent_spend if amount > 0),
    )


def _holdings_values(holdings: _Holdings) -> dict[str, float | None]:
    income, dti = holdings.income, holdings.debt_to_income
    return {
        "outstanding_debt": float(holdings.debt),
        "monthly_income": None if income is None else float(income),
        "verified_monthly_income": float(holdings.verified_income),
        "income_verification_level": float(holdings.verification_level),
        "debt_to_income": None if dti is None else float(dti),
        "verified_assets": float(holdings.verified_assets),
        "unverified_assets": float(holdings.unverified_assets),
    }


@dataclass(frozen=True, slots=True)
class _Cached:
    """What a state's features at any instant of one calendar month share."""

    state: UserState
    holdings: _Holdings
    holdings_values: dict[str, float | None]
    month: int
    monthly: tuple[int, Decimal, int]


class _Last:
    """The parts of the last state's features that time changes only by calendar month.

    The status machine derives a state's features at many review instants in a row (a
    state changes only with events): those parts are computed once per state and month.
    Keyed by the state's identity (the entry keeps it alive); replaced whole."""

    entry: _Cached | None = None


class _LastHoldings:
    """The last loans and assets mappings and their features: a fold that changes neither
    keeps both mappings (``fold_events`` copies them on change), so a user's successive
    states share them. Keyed by identity (the entry keeps both alive); replaced whole."""

    entry: (
        tuple[object, object, _Holdings, dict[str, float | None], tuple[float | None, ...]] | None
    ) = None


def _holdings_of(
    state: UserState,
) -> tuple[_Holdings, dict[str, float | None], tuple[float | None, ...]]:
    entry = _LastHoldings.entry
    if entry is None or entry[0] is not state.loans or entry[1] is not state.assets:
        holdings = _holdings(state)
        values = _holdings_values(holdings)
        entry = _LastHoldings.entry = (
            state.loans,
            state.assets,
            holdings,
            values,
            tuple(values.values()),
        )
    return entry[2], entry[3], entry[4]


def _cached(state: UserState, now_month: int) -> _Cached:
    entry = _Last.entry
    if entry is None or entry.state is not state:
        holdings, values, _ = _holdings_of(state)
        entry = _Cached(state, holdings, values, now_month, _monthly(state, now_month))
        _Last.entry = entry
    elif entry.month != now_month:
        entry = _Cached(
            state, entry.holdings, entry.holdings_values, now_month, _monthly(state, now_month)
        )
        _Last.entry = entry
    return entry


def _history_months(state: UserState, at: datetime) -> float:
    return (at - state.first_event_at).total_seconds() / 86400 / _DAYS_PER_MONTH


def derive_features(state: UserState, at: datetime) -> Features:
    """Evaluate a user's features at ``at`` (never before the state's own ``as_of``)."""
    if state.as_of > at:
        at = state.as_of
    factor = decay_factor(at - state.as_of)
    cached = _cached(state, month_index(at))
    holdings = cached.holdings
    worst, average_spend, active_months = cached.monthly
    return Features(
        at=at,
        on_time_repayments=state.on_time * factor,
        late_repayments=state.late * factor,
        missed_repayments=state.missed * factor,
        worst_days_past_due_12m=worst,
        outstanding_debt=holdings.debt,
        monthly_income=holdings.income,
        verified_monthly_income=holdings.verified_income,
        income_verification_level=holdings.verification_level,
        debt_to_income=holdings.debt_to_income,
        verified_assets=holdings.verified_assets,
        unverified_assets=holdings.unverified_assets,
        average_monthly_spend_6m=average_spend,
        active_spend_months_6m=active_months,
        history_months=_history_months(state, at),
        days_since_delinquency={
            level: (at - moment).total_seconds() / 86400
            for level, moment in state.last_delinquency_at.items()
        },
        last_delinquency_at=state.last_delinquency_at,
    )


def feature_values(state: UserState, at: datetime) -> dict[str, float | None]:
    """``derive_features(state, at).values()`` without building the :class:`Features`: the
    status machine needs only the numbers, at every review instant (a property test holds
    the two equal)."""
    if state.as_of > at:
        at = state.as_of
    factor = decay_factor(at - state.as_of)
    cached = _cached(state, month_index(at))
    return _as_values(
        (state.on_time * factor, state.late * factor, state.missed * factor),
        cached.holdings_values,
        cached.monthly,
        _history_months(state, at),
    )

"""What a scorecard and a policy look at: a user's features at one moment, derived from the
folded state. Pure; the score range (350–950) is the product's scale."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
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
        """Numeric features by name (what policy attributes and rules refer to)."""
        result: dict[str, float | None] = {}
        for name in _NUMERIC_FIELDS:
            value = getattr(self, name)
            if value is None:
                result[name] = None
            elif isinstance(value, _NUMBER_TYPES):
                result[name] = float(value)
        return result


#: Fields of :class:`Features` that :meth:`Features.values` may report, in field order
#: (``at`` and the delinquency mappings are never numbers).
_NUMERIC_FIELDS = tuple(
    f.name
    for f in fields(Features)
    if f.name not in ("at", "days_since_delinquency", "last_delinquency_at")
)
_NUMBER_TYPES = (int, float, Decimal)


def derive_features(state: UserState, at: datetime) -> Features:
    """Evaluate a user's features at ``at`` (never before the state's own ``as_of``)."""
    if state.as_of > at:
        at = state.as_of
    factor = decay_factor(at - state.as_of)
    now_month = month_index(at)
    recent_dpd = [
        dpd for month, dpd in state.delinquency_by_month.items() if month > now_month - 12
    ]
    worst = max(recent_dpd) if recent_dpd else 0
    recent_spend = [
        amount for month, amount in state.spend_by_month.items() if month > now_month - 6
    ]
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
    return Features(
        at=at,
        on_time_repayments=state.on_time * factor,
        late_repayments=state.late * factor,
        missed_repayments=state.missed * factor,
        worst_days_past_due_12m=worst,
        outstanding_debt=debt,
        monthly_income=income,
        verified_monthly_income=income if verified_income and income else Decimal(0),
        income_verification_level=(2 if verified_income else 1) if income else 0,
        debt_to_income=float(debt / (income * 12)) if income else None,
        verified_assets=verified_assets,
        unverified_assets=unverified_assets,
        average_monthly_spend_6m=(sum(recent_spend, Decimal(0)) / 6).quantize(_CENT),
        active_spend_months_6m=sum(1 for amount in recent_spend if amount > 0),
        history_months=(at - state.first_event_at).total_seconds() / 86400 / _DAYS_PER_MONTH,
        days_since_delinquency={
            level: (at - moment).total_seconds() / 86400
            for level, moment in state.last_delinquency_at.items()
        },
        last_delinquency_at=state.last_delinquency_at,
    )

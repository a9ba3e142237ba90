"""Features → points → score, credit limit and effective status (the first scorecard).

Everything that will become run-time policy lives in :class:`Scorecard` as plain data; the
functions here only interpret it. Every attribute is monotone in its input, so more on-time
repayments or verified assets never lower the score and more days past due or a higher
debt-to-income never raise it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal

from schemas.models import EffectiveStatus
from streams.core.state import UserState, decay_factor, month_index

SCORER_VERSION = "scorecard-1.0"
SCORE_MIN = 350
SCORE_MAX = 950
_DAYS_PER_MONTH = 30.4375
_WEALTH_TYPES = ("deposit", "investment", "property")


@dataclass(frozen=True, slots=True)
class Features:
    """What the scorecard looks at, evaluated at one moment (``at``)."""

    at: datetime
    on_time_repayments: float
    late_repayments: float
    missed_repayments: float
    worst_days_past_due_12m: int
    days_since_serious_delinquency: float | None
    outstanding_debt: Decimal
    monthly_income: Decimal | None
    income_verified: bool
    debt_to_income: float | None
    verified_assets: Decimal
    unverified_assets: Decimal
    average_monthly_spend_6m: Decimal
    active_spend_months_6m: int
    history_months: float


def derive_features(state: UserState, at: datetime) -> Features:
    """Evaluate a user's features at ``at`` (never before the state's own ``as_of``)."""
    at = max(at, state.as_of)
    factor = decay_factor(at - state.as_of)
    now_month = month_index(at)
    worst = max(
        (dpd for month, dpd in state.delinquency_by_month.items() if month > now_month - 12),
        default=0,
    )
    recent_spend = [
        amount for month, amount in state.spend_by_month.items() if month > now_month - 6
    ]
    debt = sum((loan.balance for loan in state.loans.values()), Decimal(0))
    income_snapshot = state.assets.get("income")
    income = income_snapshot.value if income_snapshot is not None else None
    dti = float(debt / (income * 12)) if income else None
    verified = sum(
        (a.value for t, a in state.assets.items() if t in _WEALTH_TYPES and a.verified), Decimal(0)
    )
    unverified = sum(
        (a.value for t, a in state.assets.items() if t in _WEALTH_TYPES and not a.verified),
        Decimal(0),
    )
    serious = state.last_serious_delinquency_at
    return Features(
        at=at,
        on_time_repayments=state.on_time * factor,
        late_repayments=state.late * factor,
        missed_repayments=state.missed * factor,
        worst_days_past_due_12m=worst,
        days_since_serious_delinquency=(
            (at - serious).total_seconds() / 86400 if serious is not None else None
        ),
        outstanding_debt=debt,
        monthly_income=income,
        income_verified=bool(income_snapshot and income_snapshot.verified and income),
        debt_to_income=dti,
        verified_assets=verified,
        unverified_assets=unverified,
        average_monthly_spend_6m=(sum(recent_spend, Decimal(0)) / 6).quantize(Decimal("0.01")),
        active_spend_months_6m=sum(1 for amount in recent_spend if amount > 0),
        history_months=(at - state.first_event_at).total_seconds() / 86400 / _DAYS_PER_MONTH,
    )


@dataclass(frozen=True, slots=True)
class Bin:
    """Inputs below ``upper`` (exclusive; ``None`` = no bound) score ``points``."""

    upper: float | None
    points: int


@dataclass(frozen=True, slots=True)
class Attribute:
    """One scorecard characteristic: a feature, its bins and a short adverse-factor text."""

    name: str
    measure: str
    adverse_text: str
    value: Callable[[Features], float | None]
    bins: tuple[Bin, ...]
    missing_points: int = 0

    def points(self, features: Features) -> int:
        """Points this attribute gives ``features``."""
        value = self.value(features)
        if value is None:
            return self.missing_points
        for bin_ in self.bins:
            if bin_.upper is None or value < bin_.upper:
                return bin_.points
        raise ValueError(f"{self.name}: bins do not cover {value}")  # pragma: no cover

    @property
    def max_points(self) -> int:
        """The best this attribute can give; shortfalls from it are adverse factors."""
        return max([b.points for b in self.bins] + [self.missing_points])


def _income_level(f: Features) -> float:
    if not f.monthly_income:
        return 0.0
    return 2.0 if f.income_verified else 1.0


@dataclass(frozen=True, slots=True)
class Scorecard:
    """Parameters of scoring, limits and status; later a run-time policy document."""

    version: str
    base_points: int
    attributes: tuple[Attribute, ...]
    open_threshold: int
    freeze_window: timedelta
    stale_after: timedelta
    limit_min: Decimal
    limit_max: Decimal
    limit_income_multiple_at_threshold: Decimal
    limit_income_multiple_at_max: Decimal
    unverified_income_weight: Decimal
    verified_asset_ratio: Decimal
    unverified_asset_ratio: Decimal
    limit_rounding: Decimal
    min_partial_amount: Decimal


DEFAULT_SCORECARD = Scorecard(
    version="builtin-1",
    base_points=560,
    attributes=(
        Attribute(
            "on_time_repayments",
            "decayed count (half-life 180 days)",
            "Few on-time repayments recently",
            lambda f: f.on_time_repayments,
            (Bin(1, 0), Bin(3, 25), Bin(6, 50), Bin(10, 80), Bin(None, 110)),
        ),
        Attribute(
            "late_repayments",
            "decayed count of paid-late repayments",
            "Repayments made late",
            lambda f: f.late_repayments,
            (Bin(0.5, 0), Bin(1.5, -30), Bin(3, -60), Bin(None, -100)),
        ),
        Attribute(
            "missed_repayments",
            "decayed count of missed or short repayments",
            "Repayments missed or short",
            lambda f: f.missed_repayments,
            (Bin(0.5, 0), Bin(1.5, -60), Bin(3, -120), Bin(None, -180)),
        ),
        Attribute(
            "worst_days_past_due_12m",
            "worst days past due, last 12 calendar months",
            "Days past due in the last 12 months",
            lambda f: f.worst_days_past_due_12m,
            (Bin(1, 0), Bin(30, -30), Bin(60, -120), Bin(90, -170), Bin(None, -220)),
        ),
        Attribute(
            "debt_to_income",
            "outstanding debt / (12 × monthly income)",
            "Debt high relative to income",
            lambda f: f.debt_to_income,
            (Bin(0.2, 60), Bin(0.4, 35), Bin(0.6, 10), Bin(1.0, -30), Bin(None, -80)),
            missing_points=-20,
        ),
        Attribute(
            "verified_assets",
            "verified deposit + investment + property",
            "Few verified assets",
            lambda f: float(f.verified_assets),
            (Bin(5_000, 0), Bin(20_000, 20), Bin(100_000, 40), Bin(500_000, 70), Bin(None, 90)),
        ),
        Attribute(
            "income_verification",
            "0 no income · 1 declared · 2 verified",
            "Income not verified",
            _income_level,
            (Bin(1, 0), Bin(2, 5), Bin(None, 25)),
        ),
        Attribute(
            "unverified_assets",
            "declared, unverified assets",
            "Few declared assets",
            lambda f: float(f.unverified_assets),
            (Bin(20_000, 0), Bin(100_000, 10), Bin(None, 20)),
        ),
        Attribute(
            "spending_regularity",
            "months with spending among the last 6",
            "Irregular account use",
            lambda f: f.active_spend_months_6m,
            (Bin(2, 0), Bin(4, 10), Bin(6, 20), Bin(None, 30)),
        ),
        Attribute(
            "history_length",
            "months since the first event",
            "Short credit history",
            lambda f: f.history_months,
            (Bin(3, 0), Bin(6, 10), Bin(12, 25), Bin(24, 40), Bin(None, 55)),
        ),
    ),
    open_threshold=600,
    freeze_window=timedelta(days=90),
    stale_after=timedelta(days=180),
    limit_min=Decimal("1000"),
    limit_max=Decimal("300000"),
    limit_income_multiple_at_threshold=Decimal("1"),
    limit_income_multiple_at_max=Decimal("6"),
    unverified_income_weight=Decimal("0.5"),
    verified_asset_ratio=Decimal("0.20"),
    unverified_asset_ratio=Decimal("0.05"),
    limit_rounding=Decimal("100"),
    min_partial_amount=Decimal("100"),
)


@dataclass(frozen=True, slots=True)
class Assessment:
    """A user's live credit standing at one moment: the basis of every decision."""

    user_id: str
    features: Features
    points: Mapping[str, int]
    score: int
    status: EffectiveStatus
    credit_limit: Decimal
    available_limit: Decimal
    score_as_of: datetime
    scorer_version: str
    policy_version: str


def score_features(features: Features, card: Scorecard) -> tuple[int, dict[str, int]]:
    """The score (clamped to 350–950) and the points of every attribute."""
    points = {a.name: a.points(features) for a in card.attributes}
    raw = card.base_points + sum(points.values())
    return max(SCORE_MIN, min(SCORE_MAX, raw)), points


def effective_status(features: Features, score: int, card: Scorecard) -> EffectiveStatus:
    """``frozen`` after a serious delinquency within the window, ``closed`` below threshold."""
    since = features.days_since_serious_delinquency
    if since is not None and since <= card.freeze_window.total_seconds() / 86400:
        return EffectiveStatus.FROZEN
    if score < card.open_threshold:
        return EffectiveStatus.CLOSED
    return EffectiveStatus.OPEN


def credit_limit(
    features: Features, score: int, status: EffectiveStatus, card: Scorecard
) -> Decimal:
    """Line size: income × a score-driven multiple + a share of assets, within bounds.

    Zero unless the line is open. Rounded down to ``limit_rounding``.
    """
    if status is not EffectiveStatus.OPEN:
        return Decimal("0.00")
    span = Decimal(SCORE_MAX - card.open_threshold)
    progress = Decimal(max(0, score - card.open_threshold)) / span
    low, high = card.limit_income_multiple_at_threshold, card.limit_income_multiple_at_max
    multiple = low + (high - low) * progress
    income = features.monthly_income or Decimal(0)
    if not features.income_verified:
        income *= card.unverified_income_weight
    raw = (
        income * multiple
        + features.verified_assets * card.verified_asset_ratio
        + features.unverified_assets * card.unverified_asset_ratio
    )
    bounded = min(card.limit_max, max(card.limit_min, raw))
    rounded = (bounded / card.limit_rounding).to_integral_value(ROUND_DOWN) * card.limit_rounding
    return rounded.quantize(Decimal("0.01"))


def assess(state: UserState, at: datetime, card: Scorecard = DEFAULT_SCORECARD) -> Assessment:
    """Score a user's state as of ``at``: features, points, score, status and limits."""
    features = derive_features(state, at)
    score, points = score_features(features, card)
    status = effective_status(features, score, card)
    limit = credit_limit(features, score, status, card)
    available = max(Decimal("0.00"), limit - features.outstanding_debt).quantize(Decimal("0.01"))
    return Assessment(
        user_id=state.user_id,
        features=features,
        points=points,
        score=score,
        status=status,
        credit_limit=limit,
        available_limit=available,
        score_as_of=state.as_of,
        scorer_version=SCORER_VERSION,
        policy_version=card.version,
    )


def adverse_factors(assessment: Assessment, card: Scorecard, top: int = 3) -> list[Attribute]:
    """Attributes scoring below their maximum, largest shortfall first (ties by name)."""
    by_name = {a.name: a for a in card.attributes}
    shortfalls = [
        (by_name[name].max_points - pts, name)
        for name, pts in assessment.points.items()
        if pts < by_name[name].max_points
    ]
    shortfalls.sort(key=lambda item: (-item[0], item[1]))
    return [by_name[name] for _, name in shortfalls[:top]]

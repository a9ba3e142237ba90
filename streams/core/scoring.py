"""Features → points → score → line status (with hysteresis) → credit limit, under a Policy.

Pure. Every parameter comes from :class:`~streams.core.policy.Policy`; this module only
interprets it. ``assess`` is the single entry point used by the worker, the decisions and
``creditline inspect``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal

from schemas.models import EffectiveStatus
from streams.core.policy import Policy, Promotion, SegmentException, Thresholds
from streams.core.state import UserState, decay_factor, month_index

SCORER_VERSION = "creditline-scorer-2"
SCORE_MIN = 350
SCORE_MAX = 950
STANDARD_SEGMENT = "standard"
_DAYS_PER_MONTH = 30.4375
_WEALTH_TYPES = ("deposit", "investment", "property")
_CENT = Decimal("0.01")
_MICROSECOND = timedelta(microseconds=1)


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


def score_features(
    features: Features, policy: Policy, values: dict[str, float | None] | None = None
) -> tuple[int, dict[str, int]]:
    """The score (clamped to 350–950) and the points of every attribute."""
    values = values if values is not None else features.values()
    points = {
        name: attribute.points(values[attribute.feature])
        for name, attribute in policy.scorecard.attributes.items()
    }
    raw = policy.scorecard.base_points + sum(points.values())
    return max(SCORE_MIN, min(SCORE_MAX, raw)), points


# ---- line status ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LineStatus:
    """A user's effective line status and since when (event time) it holds.

    A user's first status is provisional (``settled`` false): it is an assignment, not a
    change, so the first real change need not wait for the dwell time. This keeps a history
    that arrives in several batches from being held back by the first batch's status.
    """

    status: EffectiveStatus
    since: datetime
    settled: bool = True


def is_frozen(features: Features, policy: Policy) -> bool:
    """The hard rule: a repayment late enough, recently enough, freezes the line.

    Compared as exact durations (not float days), so a freeze ends at one instant:
    :func:`freeze_ends_at`.
    """
    rule = policy.status.freeze
    latest = features.last_delinquency_at.get(rule.days_past_due_at_least)
    return latest is not None and features.at - latest <= rule.window


def freeze_ends_at(state: UserState, policy: Policy) -> datetime | None:
    """The first instant at which the freeze rule no longer holds for ``state`` (None when no
    repayment was ever late enough). Without newer events, the line thaws exactly then."""
    rule = policy.status.freeze
    latest = state.last_delinquency_at.get(rule.days_past_due_at_least)
    if latest is None:
        return None
    return latest + rule.window + _MICROSECOND


def next_line_status(
    previous: LineStatus | None,
    *,
    frozen: bool,
    score: int,
    thresholds: Thresholds,
    at: datetime,
    min_dwell: timedelta,
) -> LineStatus:
    """The status at ``at``, given the previous one: freezing is immediate; otherwise an open
    line closes below ``close_below`` and a closed one reopens at ``reopen_at``, each no
    sooner than ``min_dwell`` after the last change (hysteresis against flapping)."""
    if frozen:
        if previous is not None and previous.status is EffectiveStatus.FROZEN:
            return previous
        return LineStatus(EffectiveStatus.FROZEN, at, settled=previous is not None)
    qualifies = score >= thresholds.reopen_at
    status = EffectiveStatus.OPEN if qualifies else EffectiveStatus.CLOSED
    if previous is None:
        return LineStatus(status, at, settled=False)
    if previous.status is EffectiveStatus.FROZEN:
        # A freeze that has run out: no dwell to respect.
        return LineStatus(status, at)
    dwelt = not previous.settled or at - previous.since >= min_dwell
    if previous.status is EffectiveStatus.OPEN and score < thresholds.close_below and dwelt:
        return LineStatus(EffectiveStatus.CLOSED, at)
    if previous.status is EffectiveStatus.CLOSED and qualifies and dwelt:
        return LineStatus(EffectiveStatus.OPEN, at)
    return previous


# ---- the assessment ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Assessment:
    """A user's live credit standing at one moment, under one policy version."""

    user_id: str
    features: Features
    points: Mapping[str, int]
    score: int
    segment: str
    exception: SegmentException | None
    promotion: Promotion | None
    thresholds: Thresholds
    frozen: bool
    line: LineStatus
    #: The score qualifies for reopening but the dwell time since the last change has not passed.
    dwell_blocked: bool
    credit_limit: Decimal
    available_limit: Decimal
    score_as_of: datetime
    scorer_version: str
    policy_version: str

    @property
    def status(self) -> EffectiveStatus:
        """The effective status."""
        return self.line.status


def segment_of(
    features: Features, policy: Policy, values: dict[str, float | None] | None = None
) -> str:
    """The first segment whose rule matches, else ``standard``."""
    values = values if values is not None else features.values()
    for segment in policy.segments:
        if segment.when.matches(values):
            return segment.name
    return STANDARD_SEGMENT


def credit_limit(
    features: Features,
    score: int,
    status: EffectiveStatus,
    thresholds: Thresholds,
    policy: Policy,
    *,
    multiplier: Decimal = Decimal(1),
    cap: Decimal | None = None,
) -> Decimal:
    """Line size: income × a multiple growing from the reopen threshold to 950, plus a share
    of assets, times segment and promotion multipliers, bounded, capped, rounded down.
    Zero unless the line is open."""
    if status is not EffectiveStatus.OPEN:
        return Decimal("0.00")
    limits = policy.limits
    span = Decimal(max(1, SCORE_MAX - thresholds.reopen_at))
    progress = min(Decimal(1), Decimal(max(0, score - thresholds.reopen_at)) / span)
    low, high = limits.income_multiple_at_reopen, limits.income_multiple_at_max_score
    income = features.monthly_income or Decimal(0)
    if features.income_verification_level != 2:
        income *= limits.unverified_income_weight
    raw = (
        income * (low + (high - low) * progress)
        + features.verified_assets * limits.verified_asset_ratio
        + features.unverified_assets * limits.unverified_asset_ratio
    ) * multiplier
    bounded = min(limits.maximum, max(limits.minimum, raw))
    if cap is not None:
        bounded = min(bounded, cap)
    rounded = (bounded / limits.rounding).to_integral_value(ROUND_DOWN) * limits.rounding
    return rounded.quantize(_CENT)


def assess(
    state: UserState,
    at: datetime,
    policy: Policy,
    previous: LineStatus | None = None,
    *,
    with_promotions: bool = True,
    promotions_at: datetime | None = None,
) -> Assessment:
    """Score a user's state as of ``at`` under ``policy``, continuing from the ``previous``
    line status (one step of the status machine). Promotions active at ``promotions_at``
    (default ``at``) apply unless ``with_promotions`` is false (the line status itself ignores
    them: campaigns never flip a displayed status back and forth; a decision applies the
    campaign of its own request time to the standing of the last review)."""
    features = derive_features(state, at)
    at = features.at
    values = features.values()
    score, points = score_features(features, policy, values)
    segment_name = segment_of(features, policy, values)
    segment = next((s for s in policy.segments if s.name == segment_name), None)
    thresholds = segment.thresholds if segment else policy.status.thresholds
    multiplier = segment.limit_multiplier if segment else Decimal(1)
    exception = next(
        (e for e in policy.exceptions if segment_name in e.segments and e.when.matches(values)),
        None,
    )
    if exception is not None:
        thresholds = exception.thresholds
    promotion = None
    if with_promotions:
        promotion = next(
            (
                p
                for p in policy.promotions
                if p.active_at(promotions_at or at)
                and (not p.segments or segment_name in p.segments)
            ),
            None,
        )
    if promotion is not None:
        thresholds = thresholds.lowered(promotion.threshold_reduction)
        multiplier *= promotion.limit_multiplier
    frozen = is_frozen(features, policy)
    line = next_line_status(
        previous,
        frozen=frozen,
        score=score,
        thresholds=thresholds,
        at=at,
        min_dwell=policy.status.min_dwell,
    )
    dwell_blocked = (
        line.status is EffectiveStatus.CLOSED and not frozen and score >= thresholds.reopen_at
    )
    limit = credit_limit(
        features,
        score,
        line.status,
        thresholds,
        policy,
        multiplier=multiplier,
        cap=exception.limit_cap if exception else None,
    )
    available = max(Decimal("0.00"), limit - features.outstanding_debt).quantize(_CENT)
    return Assessment(
        user_id=state.user_id,
        features=features,
        points=points,
        score=score,
        segment=segment_name,
        exception=exception,
        promotion=promotion,
        thresholds=thresholds,
        frozen=frozen,
        line=line,
        dwell_blocked=dwell_blocked,
        credit_limit=limit,
        available_limit=available,
        score_as_of=state.as_of,
        scorer_version=SCORER_VERSION,
        policy_version=policy.version,
    )


def adverse_factors(assessment: Assessment, policy: Policy, top: int = 3) -> list[str]:
    """Names of the attributes scoring below their maximum, largest shortfall first."""
    attributes = policy.scorecard.attributes
    shortfalls = [
        (attributes[name].max_points - pts, name)
        for name, pts in assessment.points.items()
        if name in attributes and pts < attributes[name].max_points
    ]
    shortfalls.sort(key=lambda item: (-item[0], item[1]))
    return [name for _, name in shortfalls[:top]]

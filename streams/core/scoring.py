"""Features → score (a scorecard) → line status (with hysteresis) → credit limit (a policy).

Pure. The scorecard says *how risky* (score, points, probability of default); the policy
says *what to do about it* (thresholds, segments, exceptions, promotions, limits). This
module only interprets them. ``assess`` is the single entry point used by the worker, the
decisions, ``inspect``, ``explain`` and ``what-if``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from functools import cache

from schemas.models import EffectiveStatus
from streams.core.features import SCORE_MAX, Features, derive_features, feature_values
from streams.core.policy import Policy, Promotion, Segment, SegmentException, Thresholds
from streams.core.scorecard import (
    AdverseReason,
    ScorecardDocument,
    Scored,
    load_default_scorecard,
)
from streams.core.state import UserState

#: The version of the feature derivation and the status machine (the scorecard and the
#: policy carry their own versions).
SCORER_VERSION = "creditline-scorer-3"
STANDARD_SEGMENT = "standard"
#: Reasons a non-approval lists at most (the adverse-action method: largest shortfalls).
ADVERSE_REASONS = 4
#: The credit limit of a line that is not open.
NO_LIMIT = Decimal("0.00")
_CENT = Decimal("0.01")
_MICROSECOND = timedelta(microseconds=1)


@cache
def default_scorecard() -> ScorecardDocument:
    """The scorecard shipped with creditline (the fitted card), parsed once."""
    return load_default_scorecard()


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
    return _frozen_at(features.last_delinquency_at, features.at, policy)


def _frozen_at(last_delinquency_at: Mapping[int, datetime], at: datetime, policy: Policy) -> bool:
    rule = policy.status.freeze
    latest = last_delinquency_at.get(rule.days_past_due_at_least)
    return latest is not None and at - latest <= rule.window


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
class Standing:
    """What a line's status, reasons and card are read from alike: an :class:`Assessment`,
    or the lighter standing a status-change event is stated from
    (:class:`streams.core.announcement.StatedStanding`)."""

    __slots__ = ()
    line: LineStatus
    points: Mapping[str, int]
    segment: str
    exception: SegmentException | None
    card: ScorecardDocument

    @property
    def status(self) -> EffectiveStatus:
        """The effective status."""
        return self.line.status

    @property
    def scorecard_version(self) -> str:
        """The version of the scorecard that scored."""
        return self.card.version

    def adverse_reasons(self, top: int = ADVERSE_REASONS) -> list[AdverseReason]:
        """The characteristics that cost the most points against their best bin, largest
        shortfall first, ties in the card's order (the standard adverse-action method)."""
        return self.card.reasons(self.points, top=top)


@dataclass(frozen=True, slots=True)
class Assessment(Standing):
    """A user's live credit standing at one moment, under one policy and one scorecard."""

    user_id: str
    features: Features
    points: Mapping[str, int]
    #: characteristic → bin index (None: the missing bin), for stability monitoring.
    bins: Mapping[str, int | None]
    score: int
    #: Probability of default over the card's horizon (``card.scaling.horizon_months``).
    pd: float
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
    #: The scorecard that scored (its version is ``card.version``).
    card: ScorecardDocument = field(repr=False, compare=False)

    @property
    def at(self) -> datetime:
        """The instant assessed (never before the state's own ``as_of``)."""
        return self.features.at

    @property
    def scored(self) -> Scored:
        """The card's scoring this assessment rests on."""
        return Scored(self.score, self.points, self.bins, self.pd, self.card.version)


def segment_of(
    features: Features, policy: Policy, values: dict[str, float | None] | None = None
) -> str:
    """The first segment whose rule matches, else ``standard``."""
    return segment_named(policy, values if values is not None else features.values())


def segment_named(policy: Policy, values: dict[str, float | None]) -> str:
    """The first segment of ``policy`` whose rule matches these feature values, else
    ``standard``."""
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
        return NO_LIMIT
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


def rules_for(
    segment_name: str, policy: Policy, values: dict[str, float | None]
) -> tuple[Segment | None, SegmentException | None, Thresholds]:
    """The user's segment, the exception that applies to them if any, and the thresholds
    those give (before any promotion)."""
    segment = next((s for s in policy.segments if s.name == segment_name), None)
    thresholds = segment.thresholds if segment else policy.status.thresholds
    exception = next(
        (e for e in policy.exceptions if segment_name in e.segments and e.when.matches(values)),
        None,
    )
    if exception is not None:
        thresholds = exception.thresholds
    return segment, exception, thresholds


@dataclass(frozen=True, slots=True)
class Step:
    """One step of the status machine: the status it gives, from which score and segment."""

    line: LineStatus
    score: int
    segment: str


def review_step(
    state: UserState,
    at: datetime,
    policy: Policy,
    previous: LineStatus | None,
    card: ScorecardDocument,
) -> Step:
    """The status machine's step at a review instant: ``assess(state, at, policy, previous,
    with_promotions=False, card=card)`` reduced to its line, score and segment (no limit,
    points or probability of default: the machine steps at every review instant)."""
    at = max(at, state.as_of)  # as derive_features takes it
    values = feature_values(state, at)
    score = card.score_of(values)
    segment_name = segment_named(policy, values)
    _, _, thresholds = rules_for(segment_name, policy, values)
    line = next_line_status(
        previous,
        frozen=_frozen_at(state.last_delinquency_at, at, policy),
        score=score,
        thresholds=thresholds,
        at=at,
        min_dwell=policy.status.min_dwell,
    )
    return Step(line, score, segment_name)


def assess(
    state: UserState,
    at: datetime,
    policy: Policy,
    previous: LineStatus | None = None,
    *,
    with_promotions: bool = True,
    promotions_at: datetime | None = None,
    card: ScorecardDocument | None = None,
) -> Assessment:
    """Score a user's state as of ``at`` with ``card`` (default: the shipped scorecard)
    under ``policy``, continuing from the ``previous`` line status (one step of the status
    machine). Promotions active at ``promotions_at`` (default ``at``) apply unless
    ``with_promotions`` is false (the line status itself ignores them: campaigns never flip
    a displayed status back and forth; a decision applies the campaign of its own request
    time to the standing of the last review)."""
    features = derive_features(state, at)
    at = features.at
    values = features.values()
    card = card or default_scorecard()
    scored = card.evaluate(values)
    score, points = scored.score, scored.points
    segment_name = segment_of(features, policy, values)
    segment, exception, thresholds = rules_for(segment_name, policy, values)
    multiplier = segment.limit_multiplier if segment else Decimal(1)
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
        bins=scored.bins,
        score=score,
        pd=scored.pd,
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
        card=card,
    )

"""Loan requests → decisions, from an :class:`Assessment` of the live state. Pure.

The displayed status is echoed and compared, never used to decide.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from schemas.models import (
    DisplayedStatus,
    EffectiveStatus,
    LoanDecision,
    LoanRequest,
    Outcome,
    Reason,
)
from streams.core.features import SCORE_MIN
from streams.core.policy import Policy
from streams.core.reasons import Language, ReasonCode, make_reason, reason
from streams.core.scoring import SCORER_VERSION, Assessment, Standing

_ZERO = Decimal("0.00")
#: Decimal places of a published probability of default (more would be noise, and fewer
#: digits keep a decision's bytes the same across platforms' float formatting).
PD_DIGITS = 6
_APPROVALS = (Outcome.APPROVED, Outcome.PARTIALLY_APPROVED)


def _overrides(displayed: DisplayedStatus, effective: EffectiveStatus) -> bool:
    # "unknown" is not a status the user saw, so nothing is overridden.
    return displayed is not DisplayedStatus.UNKNOWN and displayed.value != effective.value


def judged_at(requested_at: datetime, arrival: datetime, tolerance: timedelta) -> datetime | None:
    """The instant a request is judged at: its ``requested_at``, but never after it reached
    us (``arrival``: the broker's append time, or the receipt time) — a request dated in the
    future cannot see the future. None when ``requested_at`` is more than ``tolerance``
    before its arrival: a backdated request is not trusted (it could claim an ended
    promotion or a past status)."""
    if requested_at < arrival - tolerance:
        return None
    return min(requested_at, arrival)


def _without_state(
    request: LoanRequest,
    decided_at: datetime,
    code: ReasonCode,
    policy: Policy,
    language: Language,
    evaluated_at: datetime | None = None,
) -> LoanDecision:
    return LoanDecision(
        request_id=request.request_id,
        user_id=request.user_id,
        decided_at=decided_at,
        outcome=Outcome.REVIEW,
        requested_amount=request.amount,
        approved_amount=_ZERO,
        credit_limit=_ZERO,
        available_limit=_ZERO,
        score=SCORE_MIN,
        score_as_of=None,
        effective_status=EffectiveStatus.CLOSED,
        displayed_status=request.displayed_status,
        overrides_displayed_status=False,
        reasons=[reason(code, language)],
        policy_version=policy.version,
        scorer_version=SCORER_VERSION,
        evaluated_at=evaluated_at,
    )


def decide_without_history(
    request: LoanRequest,
    decided_at: datetime,
    policy: Policy,
    language: Language = "en",
    *,
    evaluated_at: datetime | None = None,
) -> LoanDecision:
    """No state is known for the user at the request's time: a person reviews (never an
    approval)."""
    return _without_state(
        request, decided_at, ReasonCode.NO_HISTORY, policy, language, evaluated_at
    )


def decide_untrusted_time(
    request: LoanRequest, decided_at: datetime, policy: Policy, language: Language = "en"
) -> LoanDecision:
    """The request claims a time too long before it reached us: a person reviews."""
    return _without_state(request, decided_at, ReasonCode.REQUEST_TIME_UNTRUSTED, policy, language)


def decide_at_capacity(
    request: LoanRequest,
    decided_at: datetime,
    policy: Policy,
    code: ReasonCode,
    language: Language = "en",
    *,
    evaluated_at: datetime | None = None,
) -> LoanDecision:
    """The user's kept history is full (too many events or open loans): a person reviews."""
    return _without_state(request, decided_at, code, policy, language, evaluated_at)


def decide_policy_unavailable(
    request: LoanRequest, decided_at: datetime, policy: Policy, language: Language = "en"
) -> LoanDecision:
    """The policy in force at the request's time could not be confirmed: a person reviews."""
    return _without_state(request, decided_at, ReasonCode.POLICY_UNAVAILABLE, policy, language)


def decide_score_unavailable(
    request: LoanRequest, decided_at: datetime, policy: Policy, language: Language = "en"
) -> LoanDecision:
    """The state could not be read in time: a person reviews (never a blind approval)."""
    return _without_state(request, decided_at, ReasonCode.SCORE_UNAVAILABLE, policy, language)


def _outcome(
    request: LoanRequest, a: Assessment, policy: Policy, language: Language, at: datetime
) -> tuple[Outcome, Decimal, list[Reason], bool]:
    """Outcome, approved amount, rule reasons, and whether the outcome follows the status."""
    stale = at - a.score_as_of > timedelta(days=policy.status.stale_after_days)
    if a.status is EffectiveStatus.FROZEN:
        return Outcome.DECLINED, _ZERO, [reason(ReasonCode.FROZEN_PAST_DUE, language)], True
    if a.status is EffectiveStatus.CLOSED:
        code = ReasonCode.STATUS_DWELL if a.dwell_blocked else ReasonCode.SCORE_BELOW_THRESHOLD
        reasons = [reason(code, language)]
        segment = next((s for s in policy.segments if s.name == a.segment), None)
        if segment is not None:
            reasons.append(
                make_reason(f"SEGMENT_{segment.name.upper()}", segment.description, language)
            )
        return Outcome.DECLINED, _ZERO, reasons, True
    if stale:
        return Outcome.REVIEW, _ZERO, [reason(ReasonCode.STALE_SCORE, language)], False
    if request.amount <= a.available_limit:
        return Outcome.APPROVED, request.amount, [], True
    if a.available_limit >= policy.limits.min_partial_amount:
        limited = [reason(ReasonCode.LIMIT_EXCEEDED, language)]
        return Outcome.PARTIALLY_APPROVED, a.available_limit, limited, True
    short = [reason(ReasonCode.INSUFFICIENT_AVAILABLE_LIMIT, language)]
    return Outcome.DECLINED, _ZERO, short, True


def decide(
    request: LoanRequest,
    assessment: Assessment,
    decided_at: datetime,
    policy: Policy,
    *,
    without_promotion: Assessment | None = None,
    language: Language = "en",
    evaluated_at: datetime | None = None,
) -> LoanDecision:
    """Answer ``request`` from ``assessment`` (the user's standing at the last review before
    the instant the request is judged at, ``evaluated_at``, default ``requested_at``).

    ``without_promotion`` is the same assessment with promotions switched off; when a
    promotion is active it tells whether the approval depended on it.
    """
    a = assessment
    at = evaluated_at or request.requested_at
    outcome, approved, reasons, follows_status = _outcome(request, a, policy, language, at)
    overrides = follows_status and _overrides(request.displayed_status, a.status)
    if outcome not in _APPROVALS:
        reasons.extend(_adverse(a, language))
    else:
        if a.exception is not None:
            reasons.append(make_reason(a.exception.code, a.exception.text, language))
        if a.promotion is not None and without_promotion is not None:
            baseline = _outcome(request, without_promotion, policy, language, at)
            if (baseline[0], baseline[1]) != (outcome, approved):
                promo = make_reason(ReasonCode.PROMOTION_APPLIED.value, a.promotion.text, language)
                reasons.append(promo)
        if overrides and outcome is Outcome.APPROVED:
            reasons.append(reason(ReasonCode.LIVE_STATUS_OPEN, language))
    return LoanDecision(
        request_id=request.request_id,
        user_id=request.user_id,
        decided_at=decided_at,
        outcome=outcome,
        requested_amount=request.amount,
        approved_amount=approved,
        credit_limit=a.credit_limit,
        available_limit=a.available_limit,
        score=a.score,
        score_as_of=a.score_as_of,
        effective_status=a.status,
        displayed_status=request.displayed_status,
        overrides_displayed_status=overrides,
        reasons=reasons,
        policy_version=a.policy_version,
        scorer_version=a.scorer_version,
        evaluated_at=evaluated_at,
        status_since=a.line.since,
        segment=a.segment,
        scorecard_version=a.scorecard_version,
        pd=round(a.pd, PD_DIGITS),
        pd_horizon_months=a.card.scaling.horizon_months,
    )


def _adverse(a: Standing, language: Language) -> list[Reason]:
    """The scorecard's principal reasons (largest point shortfalls), in the wire form."""
    return [r.as_reason(language) for r in a.adverse_reasons()]


def status_reasons(a: Standing, policy: Policy, language: Language = "en") -> list[Reason]:
    """Why a line has its status: for a status-change event."""
    if a.status is EffectiveStatus.FROZEN:
        return [reason(ReasonCode.FROZEN_PAST_DUE, language), *_adverse(a, language)]
    if a.status is EffectiveStatus.CLOSED:
        reasons = [reason(ReasonCode.SCORE_BELOW_THRESHOLD, language)]
        segment = next((s for s in policy.segments if s.name == a.segment), None)
        if segment is not None:
            code = f"SEGMENT_{segment.name.upper()}"
            reasons.append(make_reason(code, segment.description, language))
        return [*reasons, *_adverse(a, language)]
    reasons = [reason(ReasonCode.SCORE_QUALIFIES, language)]
    if a.exception is not None:
        reasons.append(make_reason(a.exception.code, a.exception.text, language))
    return reasons

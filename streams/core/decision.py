"""Loan requests → decisions, from an :class:`Assessment` of the live state. Pure.

The displayed status is echoed and compared, never used to decide.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from schemas.models import (
    DisplayedStatus,
    EffectiveStatus,
    LoanDecision,
    LoanRequest,
    Outcome,
    Reason,
)
from streams.core.reasons import ReasonCode, adverse_reason, reason
from streams.core.scoring import (
    DEFAULT_SCORECARD,
    SCORE_MIN,
    SCORER_VERSION,
    Assessment,
    Scorecard,
    adverse_factors,
)

_ZERO = Decimal("0.00")


def _overrides(displayed: DisplayedStatus, effective: EffectiveStatus) -> bool:
    # "unknown" is not a status the user saw, so nothing is overridden.
    return displayed is not DisplayedStatus.UNKNOWN and displayed.value != effective.value


def _without_state(
    request: LoanRequest, decided_at: datetime, code: ReasonCode, card: Scorecard
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
        reasons=[reason(code)],
        policy_version=card.version,
        scorer_version=SCORER_VERSION,
    )


def decide_without_history(
    request: LoanRequest, decided_at: datetime, card: Scorecard = DEFAULT_SCORECARD
) -> LoanDecision:
    """No state is known for the user: a person reviews (never an approval)."""
    return _without_state(request, decided_at, ReasonCode.NO_HISTORY, card)


def decide_score_unavailable(
    request: LoanRequest, decided_at: datetime, card: Scorecard = DEFAULT_SCORECARD
) -> LoanDecision:
    """The state could not be read in time: a person reviews (never a blind approval)."""
    return _without_state(request, decided_at, ReasonCode.SCORE_UNAVAILABLE, card)


def decide(
    request: LoanRequest,
    assessment: Assessment,
    decided_at: datetime,
    card: Scorecard = DEFAULT_SCORECARD,
) -> LoanDecision:
    """Answer ``request`` from ``assessment`` (the user's state evaluated at ``requested_at``)."""
    status = assessment.status
    available = assessment.available_limit
    reasons: list[Reason] = []
    approved = _ZERO
    follows_status = True
    if status is EffectiveStatus.FROZEN:
        outcome = Outcome.DECLINED
        reasons.append(reason(ReasonCode.FROZEN_PAST_DUE))
    elif status is EffectiveStatus.CLOSED:
        outcome = Outcome.DECLINED
        reasons.append(reason(ReasonCode.SCORE_BELOW_THRESHOLD))
    elif request.requested_at - assessment.score_as_of > card.stale_after:
        outcome = Outcome.REVIEW
        follows_status = False
        reasons.append(reason(ReasonCode.STALE_SCORE))
    elif request.amount <= available:
        outcome = Outcome.APPROVED
        approved = request.amount
    elif available >= card.min_partial_amount:
        outcome = Outcome.PARTIALLY_APPROVED
        approved = available
        reasons.append(reason(ReasonCode.LIMIT_EXCEEDED))
    else:
        outcome = Outcome.DECLINED
        reasons.append(reason(ReasonCode.INSUFFICIENT_AVAILABLE_LIMIT))
    overrides = follows_status and _overrides(request.displayed_status, status)
    if outcome is not Outcome.APPROVED:
        reasons.extend(
            adverse_reason(a.name, a.adverse_text) for a in adverse_factors(assessment, card)
        )
    elif overrides:
        reasons.append(reason(ReasonCode.LIVE_STATUS_OPEN))
    return LoanDecision(
        request_id=request.request_id,
        user_id=request.user_id,
        decided_at=decided_at,
        outcome=outcome,
        requested_amount=request.amount,
        approved_amount=approved,
        credit_limit=assessment.credit_limit,
        available_limit=available,
        score=assessment.score,
        score_as_of=assessment.score_as_of,
        effective_status=status,
        displayed_status=request.displayed_status,
        overrides_displayed_status=overrides,
        reasons=reasons,
        policy_version=assessment.policy_version,
        scorer_version=assessment.scorer_version,
    )

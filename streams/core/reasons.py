"""Reason codes: stable identifiers with the texts shown to users and operators."""

from __future__ import annotations

from enum import StrEnum

from schemas.models import Reason


class ReasonCode(StrEnum):
    """Rule-level reasons. Adverse scorecard factors use ``ADVERSE_<ATTRIBUTE>``."""

    NO_HISTORY = "NO_HISTORY"
    SCORE_UNAVAILABLE = "SCORE_UNAVAILABLE"
    STALE_SCORE = "STALE_SCORE"
    FROZEN_PAST_DUE = "FROZEN_PAST_DUE"
    SCORE_BELOW_THRESHOLD = "SCORE_BELOW_THRESHOLD"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
    INSUFFICIENT_AVAILABLE_LIMIT = "INSUFFICIENT_AVAILABLE_LIMIT"
    LIVE_STATUS_OPEN = "LIVE_STATUS_OPEN"


TEXTS: dict[ReasonCode, str] = {
    ReasonCode.NO_HISTORY: "No repayment, spending or asset history is known yet.",
    ReasonCode.SCORE_UNAVAILABLE: "The live score could not be read in time; a person reviews.",
    ReasonCode.STALE_SCORE: "No recent enough activity to rely on the score; a person reviews.",
    ReasonCode.FROZEN_PAST_DUE: "A repayment was 30+ days past due recently; the line is frozen.",
    ReasonCode.SCORE_BELOW_THRESHOLD: "The live score is below the level needed for an open line.",
    ReasonCode.LIMIT_EXCEEDED: "The amount exceeds the available limit; that part is approved.",
    ReasonCode.INSUFFICIENT_AVAILABLE_LIMIT: "Too little of the credit limit is available.",
    ReasonCode.LIVE_STATUS_OPEN: "The live score qualifies: the line is open, whatever was shown.",
}


def reason(code: ReasonCode) -> Reason:
    """The wire form of a rule-level reason."""
    return Reason(code=code.value, text=TEXTS[code])


def adverse_reason(attribute_name: str, text: str) -> Reason:
    """The wire form of an adverse scorecard factor."""
    return Reason(code=f"ADVERSE_{attribute_name.upper()}", text=text)

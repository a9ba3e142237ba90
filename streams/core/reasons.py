"""Reason codes: stable identifiers with texts in English and Simplified Chinese."""

from __future__ import annotations

import functools
from enum import StrEnum
from typing import Literal

from schemas.models import Reason
from streams.core.policy import Text

Language = Literal["en", "zh"]


class ReasonCode(StrEnum):
    """Rule-level reasons. Policy-defined ones are ``ADVERSE_<ATTRIBUTE>`` (scorecard factors),
    ``SEGMENT_<NAME>`` and each exception's own code."""

    NO_HISTORY = "NO_HISTORY"
    SCORE_UNAVAILABLE = "SCORE_UNAVAILABLE"
    STALE_SCORE = "STALE_SCORE"
    FROZEN_PAST_DUE = "FROZEN_PAST_DUE"
    SCORE_BELOW_THRESHOLD = "SCORE_BELOW_THRESHOLD"
    STATUS_DWELL = "STATUS_DWELL"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
    INSUFFICIENT_AVAILABLE_LIMIT = "INSUFFICIENT_AVAILABLE_LIMIT"
    LIVE_STATUS_OPEN = "LIVE_STATUS_OPEN"
    PROMOTION_APPLIED = "PROMOTION_APPLIED"
    SCORE_QUALIFIES = "SCORE_QUALIFIES"
    LATE_EVENT_RESTATED = "LATE_EVENT_RESTATED"
    REQUEST_TIME_UNTRUSTED = "REQUEST_TIME_UNTRUSTED"
    POLICY_UNAVAILABLE = "POLICY_UNAVAILABLE"
    EVENT_LIMIT_REACHED = "EVENT_LIMIT_REACHED"
    LOAN_LIMIT_REACHED = "LOAN_LIMIT_REACHED"


#: Reasons of decisions that depended on the environment at the time (Redis or the policy
#: topic not answering, a user's kept history full), not on the logs alone: such a decision
#: cannot be re-derived (``explain``, ``what-if``).
ENVIRONMENTAL = frozenset(
    {
        ReasonCode.SCORE_UNAVAILABLE.value,
        ReasonCode.POLICY_UNAVAILABLE.value,
        ReasonCode.EVENT_LIMIT_REACHED.value,
        ReasonCode.LOAN_LIMIT_REACHED.value,
    }
)

TEXTS: dict[ReasonCode, Text] = {
    ReasonCode.NO_HISTORY: Text(
        en="No repayment, spending or asset history is known yet.",
        zh="尚无还款、消费或资产记录。",
    ),
    ReasonCode.SCORE_UNAVAILABLE: Text(
        en="The live score could not be read in time; a person reviews.",
        zh="未能及时读取实时评分，转人工审核。",
    ),
    ReasonCode.STALE_SCORE: Text(
        en="No recent enough activity to rely on the score; a person reviews.",
        zh="近期无足够活动记录，评分不可依赖，转人工审核。",
    ),
    ReasonCode.FROZEN_PAST_DUE: Text(
        en="A repayment was seriously past due recently; the line is frozen.",
        zh="近期存在严重逾期还款，额度已冻结。",
    ),
    ReasonCode.SCORE_BELOW_THRESHOLD: Text(
        en="The live score is below the level needed for an open line.",
        zh="实时评分低于开通额度所需水平。",
    ),
    ReasonCode.STATUS_DWELL: Text(
        en="The score qualifies, but the line changed status too recently to reopen yet.",
        zh="评分已达标，但额度状态变更过于频繁，暂不能重新开通。",
    ),
    ReasonCode.LIMIT_EXCEEDED: Text(
        en="The amount exceeds the available limit; that part is approved.",
        zh="申请金额超过可用额度，按可用额度批准。",
    ),
    ReasonCode.INSUFFICIENT_AVAILABLE_LIMIT: Text(
        en="Too little of the credit limit is available.",
        zh="可用额度不足。",
    ),
    ReasonCode.LIVE_STATUS_OPEN: Text(
        en="The live score qualifies: the line is open, whatever was shown.",
        zh="实时评分达标：额度为开通状态，与页面显示无关。",
    ),
    ReasonCode.PROMOTION_APPLIED: Text(
        en="Approved thanks to a current promotion.",
        zh="因当前活动获得批准。",
    ),
    ReasonCode.SCORE_QUALIFIES: Text(
        en="The live score meets the threshold for an open line.",
        zh="实时评分达到开通额度的门槛。",
    ),
    ReasonCode.LATE_EVENT_RESTATED: Text(
        en="An event that arrived late changed the line's past; its status is restated.",
        zh="迟到的事件改变了额度的历史状态，现予以更正。",
    ),
    ReasonCode.REQUEST_TIME_UNTRUSTED: Text(
        en="The request's time is too far from when it reached us; a person reviews.",
        zh="申请时间与实际到达时间相差过大，转人工审核。",
    ),
    ReasonCode.EVENT_LIMIT_REACHED: Text(
        en="More events were received for this user than are kept; a person reviews.",
        zh="该用户的事件数量超出保存上限，转人工审核。",
    ),
    ReasonCode.LOAN_LIMIT_REACHED: Text(
        en="The user has more open loans than are tracked; a person reviews.",
        zh="该用户未结清贷款数量超出跟踪上限，转人工审核。",
    ),
    ReasonCode.POLICY_UNAVAILABLE: Text(
        en="The policy in force could not be confirmed in time; a person reviews.",
        zh="未能及时确认当前生效的策略，转人工审核。",
    ),
}


def make_reason(code: str, text: Text, language: Language = "en") -> Reason:
    """A reason with both texts and ``text`` in ``language`` (one shared, frozen object per
    code, texts and language: a status change or a decision names a few of a few dozen)."""
    return _made(code, text.en, text.zh, language)


@functools.lru_cache(maxsize=4096)
def _made(code: str, en: str, zh: str, language: Language) -> Reason:
    return Reason(code=code, text=en if language == "en" else zh, texts={"en": en, "zh": zh})


def reason(code: ReasonCode, language: Language = "en") -> Reason:
    """The wire form of a rule-level reason."""
    return make_reason(code.value, TEXTS[code], language)

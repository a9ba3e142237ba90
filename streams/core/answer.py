"""The one path from a loan request to its decision, shared by the worker and ``explain``.

The worker reaches the user's checkpoint at the request's instant from Redis (stored and
advanced); ``explain``, ``replay`` and what-if reach it by folding the logged events. Both
then call :func:`answer`: same instant, same checkpoint, same policy → the same decision.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from schemas.models import (
    EffectiveStatus,
    LoanDecision,
    LoanRequest,
    Outcome,
    PathBack,
    PathBackOption,
)
from streams.core.decision import (
    decide,
    decide_untrusted_time,
    decide_without_history,
    judged_at,
)
from streams.core.path_back import path_back
from streams.core.reasons import Language
from streams.core.scoring import Assessment
from streams.core.timeline import Checkpoint, PolicyTimeline, standing

#: How far ahead a decision's path back looks for good behaviour alone (months).
PATH_BACK_MONTHS = 24


def request_digest(request: LoanRequest) -> str:
    """A digest of everything a request says: the same ``request_id`` with another body is
    another request, never answered with the first one's decision."""
    return hashlib.blake2b(request.model_dump_json().encode(), digest_size=8).hexdigest()


def judgement_instant(
    request: LoanRequest, arrival: datetime, tolerance: timedelta
) -> datetime | None:
    """The instant a request is judged at (None: not trusted). See :func:`judged_at`."""
    return judged_at(request.requested_at, arrival, tolerance)


def answer(
    request: LoanRequest,
    checkpoint: Checkpoint,
    timelines: PolicyTimeline,
    at: datetime | None,
    decided_at: datetime,
    language: Language = "en",
) -> LoanDecision:
    """The decision for ``request`` judged at ``at`` from ``checkpoint`` (the user's machine
    at the last review instant ≤ ``at``); ``at`` None means the request time is not trusted."""
    return answer_in_full(request, checkpoint, timelines, at, decided_at, language)[0]


def answer_in_full(
    request: LoanRequest,
    checkpoint: Checkpoint,
    timelines: PolicyTimeline,
    at: datetime | None,
    decided_at: datetime,
    language: Language = "en",
) -> tuple[LoanDecision, Assessment | None]:
    """:func:`answer`, with the assessment it was decided from (None without one)."""
    if at is None:
        untrusted = decide_untrusted_time(request, decided_at, timelines.at(decided_at), language)
        return untrusted, None
    policy = timelines.at(at)  # exactly one version per decision: the one in force then
    assessment = standing(checkpoint, timelines, promotions_at=at)
    if assessment is None:
        unknown = decide_without_history(request, decided_at, policy, language, evaluated_at=at)
        return unknown, None
    baseline = standing(checkpoint, timelines) if assessment.promotion is not None else None
    decision = decide(
        request,
        assessment,
        decided_at,
        policy,
        without_promotion=baseline,
        language=language,
        evaluated_at=at,
    )
    if decision.outcome is Outcome.DECLINED and decision.effective_status in _HELD:
        way_back = way_back_of(checkpoint, assessment, language)
        decision = decision.model_copy(update={"path_back": way_back})
    return decision, assessment


_HELD = (EffectiveStatus.CLOSED, EffectiveStatus.FROZEN)


def way_back_of(
    checkpoint: Checkpoint, assessment: Assessment, language: Language = "en"
) -> PathBack | None:
    """The path back to the reopening threshold of ``assessment`` (the checkpoint's
    :func:`standing`) from the checkpoint's state, under the card that scored, in the wire
    form (None without a state)."""
    if checkpoint.state is None or checkpoint.at is None:
        return None
    found = path_back(
        assessment.card,
        checkpoint.state,
        checkpoint.at,
        assessment.thresholds.reopen_at,
        max_months=PATH_BACK_MONTHS,
        now=(assessment.features, assessment.scored),  # assessed from that state, then
    )
    options = []
    for path in found.paths:
        text = path.text  # written on each reading: once here
        options.append(
            PathBackOption(
                text=getattr(text, language),
                texts={"en": text.en, "zh": text.zh},
                months=path.months,
                score=path.score,
            )
        )
    return PathBack(
        target_score=found.target,
        options=options,
        good_behaviour_months=found.good_behaviour_months,
    )

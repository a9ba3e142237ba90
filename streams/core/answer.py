"""The one path from a loan request to its decision, shared by the worker and ``explain``.

The worker reaches the user's checkpoint at the request's instant from Redis (stored and
advanced); ``explain``, ``replay`` and what-if reach it by folding the logged events. Both
then call :func:`answer`: same instant, same checkpoint, same policy → the same decision.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from schemas.models import LoanDecision, LoanRequest
from streams.core.decision import (
    decide,
    decide_untrusted_time,
    decide_without_history,
    judged_at,
)
from streams.core.reasons import Language
from streams.core.timeline import Checkpoint, PolicyTimeline, standing


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
    if at is None:
        return decide_untrusted_time(request, decided_at, timelines.at(decided_at), language)
    policy = timelines.at(at)  # exactly one version per decision: the one in force then
    assessment = standing(checkpoint, timelines, promotions_at=at)
    if assessment is None:
        return decide_without_history(request, decided_at, policy, language, evaluated_at=at)
    baseline = standing(checkpoint, timelines) if assessment.promotion is not None else None
    return decide(
        request,
        assessment,
        decided_at,
        policy,
        without_promotion=baseline,
        language=language,
        evaluated_at=at,
    )

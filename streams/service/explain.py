"""Re-deriving published decisions from the logs: ``creditline explain``.

A decision is a function of the user's events up to the instant it was judged at and the
policy versions in force then. Everything needed is on the topics: the decision (with its
``evaluated_at``), the request, the user's events, the policy history. This module reads
them, folds the events through the same core the worker runs (:func:`~streams.core.timeline
.advance` and :func:`~streams.core.answer.answer`) and compares the result with what was
published, field by field, with the review-by-review trajectory that led to it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from schemas.models import InputEvent, LoanDecision, LoanRequest
from streams.core.answer import answer
from streams.core.decoding import DecodeLimits
from streams.core.reasons import ENVIRONMENTAL, Language
from streams.core.timeline import START, PolicyTimeline, Review, advance, canonical
from streams.ports import TopicReader
from streams.service.logs import Progress, read_decisions, read_events, read_requests
from streams.topics import Topics

#: Decisions that depended on the environment at the time (Redis or the policy topic not
#: answering, a user's kept history full), not on the logs alone: not re-derived.
_ENVIRONMENTAL = ENVIRONMENTAL


@dataclass
class Explanation:
    """One published decision, re-derived."""

    request_id: str
    published: LoanDecision
    rederived: LoanDecision | None
    #: Fields whose published and re-derived values differ.
    differences: list[str]
    trace: list[Review] = field(default_factory=list)
    #: The user's events up to the instant judged at.
    events: int = 0
    #: Of those, the ones that reached Kafka after the decision was made (restatements).
    late_events: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def matches(self) -> bool:
        """Whether the re-derived decision equals the published one in every field."""
        return self.rederived is not None and not self.differences


def _differences(published: LoanDecision, rederived: LoanDecision) -> list[str]:
    a = published.model_dump(mode="json")
    b = rederived.model_dump(mode="json")
    return [name for name in a if a[name] != b.get(name)]


def explain_one(
    decision: LoanDecision,
    request: LoanRequest | None,
    events: Iterable[tuple[InputEvent, float]],
    timelines: PolicyTimeline,
    horizon: timedelta,
    language: Language = "en",
) -> Explanation:
    """Re-derive one decision from the logged request and events (pure)."""
    if request is None:
        return Explanation(decision.request_id, decision, None, [], note="request not found")
    codes = {r.code for r in decision.reasons}
    if codes & _ENVIRONMENTAL:
        return Explanation(
            decision.request_id,
            decision,
            None,
            [],
            note="answered review because Redis or the policy topic did not answer in time, "
            "or the user's kept history was full: not a function of the logs alone",
        )
    at = decision.evaluated_at
    logged = list(events)
    if at is None:
        rederived = answer(request, START, timelines, None, decision.decided_at, language)
        return Explanation(
            decision.request_id, decision, rederived, _differences(decision, rederived)
        )
    before = [e for e, _ in logged if e.occurred_at <= at]
    late = [
        e.event_id
        for e, arrival in logged
        if e.occurred_at <= at and arrival > decision.decided_at.timestamp()
    ]
    trace: list[Review] = []
    checkpoint = advance(canonical(before), timelines, at, horizon, trace=trace)
    rederived = answer(request, checkpoint, timelines, at, decision.decided_at, language)
    return Explanation(
        decision.request_id,
        decision,
        rederived,
        _differences(decision, rederived),
        trace=trace,
        events=len(before),
        late_events=late,
    )


async def explain(
    reader: TopicReader,
    timelines: PolicyTimeline,
    topics: Topics,
    limits: DecodeLimits,
    request_ids: set[str] | None = None,
    *,
    language: Language = "en",
    on_progress: Callable[[int], None] = lambda done: None,
) -> list[Explanation]:
    """Re-derive the published decisions of ``request_ids`` (every one when None)."""
    progress = Progress(on_progress)
    decisions = await read_decisions(reader, topics, request_ids, progress)
    requests = await read_requests(
        reader, topics, lambda request, _: request.request_id in decisions, progress
    )
    users = {d.user_id for d in decisions.values()}
    events = await read_events(reader, topics, limits, users, progress)
    return [
        explain_one(
            decision,
            requests[request_id][0] if request_id in requests else None,
            events.get(decision.user_id, {}).values(),
            timelines,
            limits.horizon,
            language,
        )
        for request_id, decision in sorted(decisions.items())
    ]

"""Re-deriving published decisions from the logs: ``creditline explain``.

A decision is a function of the user's events up to the instant it was judged at and the
policy versions in force then. Everything needed is on the topics: the decision (with its
``evaluated_at``), the request, the user's events, the policy history. This module reads
them, folds the events through the same core the worker runs (:func:`~streams.core.timeline
.advance` and :func:`~streams.core.answer.answer`) and compares the result with what was
published, field by field, with the review-by-review trajectory that led to it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError

from schemas.models import InputEvent, LoanDecision, LoanRequest
from streams.core.answer import answer
from streams.core.decoding import DecodeLimits, RejectedRecord, decode_record
from streams.core.reasons import Language, ReasonCode
from streams.core.timeline import START, PolicyTimeline, Review, advance, canonical
from streams.ports import TopicReader
from streams.topics import Topics

#: Decisions that depended on the environment at the time (Redis or the policy topic not
#: answering, a user's kept history full), not on the logs alone: not re-derived.
_ENVIRONMENTAL = {
    ReasonCode.SCORE_UNAVAILABLE.value,
    ReasonCode.POLICY_UNAVAILABLE.value,
    ReasonCode.EVENT_LIMIT_REACHED.value,
    ReasonCode.LOAN_LIMIT_REACHED.value,
}


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


@dataclass
class _Logged:
    decisions: dict[str, LoanDecision]
    requests: dict[str, LoanRequest]
    #: user → event id → (event, arrival time of its first delivery)
    events: dict[str, dict[str, tuple[InputEvent, float]]]


def _differences(published: LoanDecision, rederived: LoanDecision) -> list[str]:
    a = published.model_dump(mode="json")
    b = rederived.model_dump(mode="json")
    return [name for name in a if a[name] != b.get(name)]


async def _read_logs(
    reader: TopicReader,
    topics: Topics,
    limits: DecodeLimits,
    wanted: set[str] | None,
    on_progress: Callable[[int], None],
) -> _Logged:
    decisions: dict[str, LoanDecision] = {}
    read = 0
    async for batch in reader.read_to_end([topics.loan_decisions]):
        for record in batch:
            try:
                decision = LoanDecision.model_validate_json(record.value or b"")
            except ValidationError:
                continue
            if wanted is None or decision.request_id in wanted:
                decisions.setdefault(decision.request_id, decision)
        read += len(batch)
        on_progress(read)
    requests: dict[str, LoanRequest] = {}
    async for batch in reader.read_to_end([topics.loan_requests]):
        for record in batch:
            try:
                request = LoanRequest.model_validate_json(record.value or b"")
            except ValidationError:
                continue
            if request.request_id in decisions:
                requests.setdefault(request.request_id, request)
        read += len(batch)
        on_progress(read)
    users = {d.user_id for d in decisions.values()}
    events: dict[str, dict[str, tuple[InputEvent, float]]] = defaultdict(dict)
    deliveries: list[tuple[float, str, int, int, InputEvent]] = []
    async for batch in reader.read_to_end(topics.events):
        for record in batch:
            if record.key is None or record.key.decode(errors="replace") not in users:
                continue
            arrival = record.timestamp or 0.0
            try:
                event = decode_record(
                    topics.kind_of(record.topic),
                    record.key,
                    record.value,
                    now=datetime.fromtimestamp(arrival, UTC),
                    limits=limits,
                )
            except RejectedRecord:
                continue
            assert not isinstance(event, LoanRequest)
            deliveries.append((arrival, record.topic, record.partition, record.offset, event))
        read += len(batch)
        on_progress(read)
    # The first delivery of an event id is the one the worker applied.
    for arrival, _, _, _, event in sorted(deliveries, key=lambda d: d[:4]):
        events[event.user_id].setdefault(event.event_id, (event, arrival))
    return _Logged(decisions, requests, events)


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
    logged = await _read_logs(reader, topics, limits, request_ids, on_progress)
    return [
        explain_one(
            decision,
            logged.requests.get(request_id),
            logged.events.get(decision.user_id, {}).values(),
            timelines,
            limits.horizon,
            language,
        )
        for request_id, decision in sorted(logged.decisions.items())
    ]

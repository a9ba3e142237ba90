"""Reading what the logs hold, for the jobs that re-derive answers from them (``explain``,
``what-if``, ``scorecard dataset``): decisions, loan requests with their broker arrival time,
and users' events decoded exactly as the worker decodes them (first delivery of an event id
wins, as the worker applies it)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import ValidationError

from schemas.models import InputEvent, LoanDecision, LoanRequest
from streams.core.decoding import DecodeLimits, RejectedRecord, decode_record
from streams.ports import TopicReader
from streams.topics import Topics

#: user → event id → (event, arrival time of its first delivery, epoch seconds)
UserEvents = dict[str, dict[str, tuple[InputEvent, float]]]


@dataclass
class Progress:
    """Records read so far, reported as they are read."""

    report: Callable[[int], None] = lambda done: None
    read: int = 0

    def add(self, records: int) -> None:
        """Count ``records`` more."""
        self.read += records
        self.report(self.read)


async def read_decisions(
    reader: TopicReader,
    topics: Topics,
    wanted: set[str] | None = None,
    progress: Progress | None = None,
    *,
    shadow: bool = False,
) -> dict[str, LoanDecision]:
    """The first published decision of every request id (of ``wanted`` ones when given); the
    candidate's, from the shadow topic, with ``shadow``."""
    progress = progress or Progress()
    decisions: dict[str, LoanDecision] = {}
    topic = topics.loan_decisions_shadow if shadow else topics.loan_decisions
    async for batch in reader.read_to_end([topic]):
        for record in batch:
            try:
                decision = LoanDecision.model_validate_json(record.value or b"")
            except ValidationError:
                continue
            if wanted is None or decision.request_id in wanted:
                decisions.setdefault(decision.request_id, decision)
        progress.add(len(batch))
    return decisions


async def read_requests(
    reader: TopicReader,
    topics: Topics,
    keep: Callable[[LoanRequest, float], bool],
    progress: Progress | None = None,
) -> dict[str, tuple[LoanRequest, float]]:
    """The first valid request of every request id that ``keep`` (request, arrival) accepts,
    with its arrival (the broker's append time, epoch seconds)."""
    progress = progress or Progress()
    requests: dict[str, tuple[LoanRequest, float]] = {}
    async for batch in reader.read_to_end([topics.loan_requests]):
        for record in batch:
            try:
                request = LoanRequest.model_validate_json(record.value or b"")
            except ValidationError:
                continue
            arrival = record.timestamp or 0.0
            if request.request_id not in requests and keep(request, arrival):
                requests[request.request_id] = (request, arrival)
        progress.add(len(batch))
    return requests


async def read_events(
    reader: TopicReader,
    topics: Topics,
    limits: DecodeLimits,
    users: set[str] | None = None,
    progress: Progress | None = None,
) -> UserEvents:
    """Every accepted event of ``users`` (every user when None), decoded as the worker
    decodes them; a redelivered event id counts from its first delivery."""
    progress = progress or Progress()
    deliveries: list[tuple[float, str, int, int, InputEvent]] = []
    async for batch in reader.read_to_end(topics.events):
        for record in batch:
            if record.key is None:
                continue
            if users is not None and record.key.decode(errors="replace") not in users:
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
        progress.add(len(batch))
    events: UserEvents = defaultdict(dict)
    for arrival, _, _, _, event in sorted(deliveries, key=lambda d: d[:4]):
        events[event.user_id].setdefault(event.event_id, (event, arrival))
    return events

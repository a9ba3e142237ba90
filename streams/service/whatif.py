"""``creditline what-if``: the loan requests of a window re-answered from the logs under the
live configuration and a candidate one (see :mod:`streams.core.whatif` for what the candidate
is and why both sides run each user's whole history).

Reads the request topic (a request is in the window by the instant the worker judged it at,
:func:`~streams.core.answer.judgement_instant` with the broker's append time), the decisions
topic (their ``decided_at``, and to check the live side against what was published), and the
events of the requests' users once; then answers user by user through the core.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from schemas.models import LoanRequest
from streams.core.decoding import DecodeLimits
from streams.core.reasons import Language
from streams.core.timeline import PolicyTimeline
from streams.core.whatif import LineEnd, LoggedRequest, Pair, Window, compare_user, logged_request
from streams.ports import TopicReader
from streams.service.logs import Progress, read_decisions, read_events, read_requests
from streams.topics import Topics

#: Told (phase, done, total): ``reading`` counts records read (no total), ``answering``
#: counts requests answered on both sides out of the requests in the window.
OnProgress = Callable[[str, int, int | None], None]


@dataclass
class WhatIfRun:
    """Every request of the window answered on both sides, and each user's line at its end."""

    pairs: list[Pair] = field(default_factory=list)
    ends: list[LineEnd] = field(default_factory=list)
    #: Records read from the topics.
    records: int = 0


async def what_if(
    reader: TopicReader,
    live: PolicyTimeline,
    candidate: PolicyTimeline,
    topics: Topics,
    limits: DecodeLimits,
    window: Window,
    tolerance: timedelta,
    *,
    language: Language = "en",
    on_progress: OnProgress = lambda phase, done, total: None,
) -> WhatIfRun:
    """Re-answer the requests judged in ``window`` under ``live`` and ``candidate``."""
    progress = Progress(lambda done: on_progress("reading", done, None))
    chosen: dict[str, LoggedRequest] = {}
    seen: set[str] = set()

    def keep(request: LoanRequest, arrival: float) -> bool:
        # Only a request id's first valid record counts, as the worker answers it (a
        # redelivery gets the remembered decision).
        if request.request_id in seen:
            return False
        seen.add(request.request_id)
        logged = logged_request(request, datetime.fromtimestamp(arrival, UTC), tolerance)
        if not window.holds(logged.instant):
            return False
        chosen[request.request_id] = logged
        return True

    requests = await read_requests(reader, topics, keep, progress)
    decisions = await read_decisions(reader, topics, set(requests), progress)
    by_user: dict[str, list[LoggedRequest]] = defaultdict(list)
    for request_id in requests:
        logged = chosen[request_id]
        published = decisions.get(request_id)
        if published is not None:
            logged = LoggedRequest(logged.request, logged.arrival, logged.at, published)
        by_user[logged.request.user_id].append(logged)
    events = await read_events(reader, topics, limits, set(by_user), progress)
    result = WhatIfRun(records=progress.read)
    total = len(requests)
    answered = 0

    def one_more() -> None:
        nonlocal answered
        answered += 1
        on_progress("answering", answered, total)

    on_progress("answering", 0, total)
    for user in sorted(by_user):
        logged_events = [event for event, _ in events.get(user, {}).values()]
        pairs, end = compare_user(
            by_user[user],
            logged_events,
            live,
            candidate,
            limits.horizon,
            window.end,
            language,
            on_answered=one_more,
        )
        result.pairs.extend(pairs)
        result.ends.append(end)
    return result

"""Rebuild every user's state in Redis from the input topics (after Redis lost its data).

The input topics keep their records (``retention.ms=-1`` by default), so reading them from the
beginning and folding them again through the same :class:`~streams.service.fold.EventFolder`
gives exactly the state the worker built. Replay is idempotent — records already in Redis are
recognised as duplicates — so it is safe while workers run. It does not re-announce dead
letters or status changes: those were published the first time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from schemas.models import LoanDecision, LoanRequest
from streams.adapters.kafka.read import read_to_end
from streams.adapters.kafka.sink import inbound_from_aiokafka
from streams.adapters.redis.store import RedisStore
from streams.core.answer import request_digest
from streams.core.timeline import PolicyTimeline
from streams.metrics import Metrics
from streams.service.fold import EventFolder
from streams.settings import Settings
from streams.topics import Topics


class _NothingPublished:
    """A sink that publishes nothing (replay must not repeat dead letters or status events)."""

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> Awaitable[Any]:
        async def done() -> None:
            return None

        return done()


@dataclass
class ReplayReport:
    """What a replay read and did, per outcome."""

    records: int = 0
    applied: int = 0
    duplicate: int = 0
    rejected: int = 0
    per_topic: dict[str, int] = field(default_factory=dict)
    #: Published decisions remembered again (so a redelivered request gets the same bytes).
    decisions_restored: int = 0
    #: Published decisions re-derived from the logs: equal, different.
    decisions_matching: int = 0
    decisions_differing: int = 0


async def restore_decisions(settings: Settings, store: RedisStore, report: ReplayReport) -> None:
    """Remember every published decision still within its retention again, byte for byte,
    and re-derive each from the logs (counted as matching or differing)."""
    from streams.service.explain import explain

    topics = Topics.from_settings(settings)
    digests: dict[str, str] = {}
    async for batch in read_to_end(settings, [topics.loan_requests]):
        for record in batch:
            try:
                request = LoanRequest.model_validate_json(record.value or b"")
            except ValidationError:
                continue
            digests.setdefault(request.request_id, request_digest(request))
    retention = timedelta(days=settings.decision_retention_days)
    now = datetime.now(UTC)
    async for batch in read_to_end(settings, [topics.loan_decisions]):
        for record in batch:
            try:
                decision = LoanDecision.model_validate_json(record.value or b"")
            except ValidationError:
                continue
            left = int((decision.decided_at + retention - now).total_seconds())
            if left <= 0 or record.value is None:
                continue
            earlier = await store.remember_decision(
                decision.user_id,
                decision.request_id,
                record.value,
                left,
                digests.get(decision.request_id, ""),
            )
            report.decisions_restored += earlier is None
    for explanation in await explain(settings):
        if explanation.rederived is None:
            continue
        if explanation.matches:
            report.decisions_matching += 1
        else:
            report.decisions_differing += 1


async def replay(
    settings: Settings,
    timelines: PolicyTimeline,
    *,
    on_total: Callable[[int], None] = lambda total: None,
    on_progress: Callable[[int], None] = lambda done: None,
    batch_records: int = 2000,
    decisions: bool = True,
) -> ReplayReport:
    """Fold every record of the event topics, from the beginning to the current end; then
    remember the published decisions again (see :func:`restore_decisions`)."""
    topics = Topics.from_settings(settings)
    metrics = Metrics()
    store = RedisStore.connect(settings, metrics)
    report = ReplayReport()
    try:
        folder = EventFolder(settings, store, _NothingPublished(), metrics, lambda: timelines)
        # The end is fixed when reading begins: records arriving meanwhile are the workers'.
        async for batch in read_to_end(settings, topics.events, batch_records, on_total):
            records = [inbound_from_aiokafka(r) for r in batch]
            result = await folder.process(records)
            report.records += len(records)
            report.applied += sum(result.applied.values())
            report.duplicate += sum(result.duplicate.values())
            report.rejected += sum(result.dead_lettered.values())
            for record in records:
                report.per_topic[record.topic] = report.per_topic.get(record.topic, 0) + 1
            on_progress(report.records)
        if decisions:
            await restore_decisions(settings, store, report)
    finally:
        await store.close()
    return report

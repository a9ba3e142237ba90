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
from streams.core.answer import request_digest
from streams.ports import InboundRecord, StateStore, TopicReader
from streams.service.fold import EventFolder
from streams.service.shell import BatchReport
from streams.topics import Topics


class NothingPublished:
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


async def restore_decisions(
    reader: TopicReader,
    store: StateStore,
    topics: Topics,
    retention: timedelta,
    report: ReplayReport,
) -> None:
    """Remember every published decision still within its retention again, byte for byte,
    with the digest of the request it answered."""
    digests: dict[str, str] = {}
    async for batch in reader.read_to_end([topics.loan_requests]):
        for record in batch:
            try:
                request = LoanRequest.model_validate_json(record.value or b"")
            except ValidationError:
                continue
            digests.setdefault(request.request_id, request_digest(request))
    now = datetime.now(UTC)
    async for batch in reader.read_to_end([topics.loan_decisions]):
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


async def fold_everything(
    reader: TopicReader,
    folder: EventFolder,
    report: ReplayReport,
    *,
    on_total: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] = lambda done: None,
    batch_records: int = 2000,
    apply: Callable[[list[InboundRecord]], Awaitable[BatchReport]] | None = None,
) -> None:
    """Fold every record of the event topics, from the beginning to the end they have now
    (records arriving meanwhile are the workers' business). Each batch goes through
    ``apply`` when given (the folder's ``process`` wrapped, e.g. with the collector paused),
    else straight to ``folder.process``."""
    process = apply if apply is not None else folder.process
    async for records in reader.read_to_end(folder.topics.events, batch_records, on_total):
        report.records += len(records)
        for record in records:
            report.per_topic[record.topic] = report.per_topic.get(record.topic, 0) + 1
        result = await process(records)  # takes the records (empties the list)
        report.applied += sum(result.applied.values())
        report.duplicate += sum(result.duplicate.values())
        report.rejected += sum(result.dead_lettered.values())
        on_progress(report.records)

"""What every service shares: retries of an unavailable store, dead-lettering with its storm
guard and log summaries, the outcome of a batch, and the dead-letter codes the services add
to the decoding ones (:class:`~streams.core.decoding.RejectCode`).

Composed into the services (a :class:`Retrier` and a :class:`DeadLetterer` each), not
inherited: each part can be tested and faked on its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from schemas.models import InputEvent, LoanRequest
from streams.core.dead_letters import dead_letter_record
from streams.core.decoding import DecodeLimits, RecordKind, decode_record
from streams.core.ledger import content_digest, fingerprint
from streams.core.plain_records import decode_plain
from streams.core.rejections import RejectionSummary
from streams.core.storm import DeadLetterStormGuard
from streams.errors import ShuttingDown, Unavailable
from streams.metrics import Metrics
from streams.ports import InboundRecord, RecordSink
from streams.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The wait after a store call first fails (then it doubles, up to a limit).
FIRST_BACKOFF_SECONDS = 0.05


class ServiceCode(StrEnum):
    """Dead-letter codes the services add to the decoding ones. Stable identifiers."""

    #: An internal error while folding events or answering a request (a bug), never silent.
    PROCESSING_ERROR = "PROCESSING_ERROR"
    #: An ``event_id`` already applied with other content (or on another topic).
    CONFLICTING_EVENT_ID = "CONFLICTING_EVENT_ID"
    #: A ``request_id`` already answered for a request with another body.
    CONFLICTING_REQUEST_ID = "CONFLICTING_REQUEST_ID"
    #: Beyond what one user's kept history takes (``max_events_per_user``).
    USER_EVENT_LIMIT = "USER_EVENT_LIMIT"
    #: A new loan beyond ``max_open_loans_per_user`` open loans.
    USER_LOAN_LIMIT = "USER_LOAN_LIMIT"


MESSAGES = {
    ServiceCode.PROCESSING_ERROR: "the record could not be processed (internal error)",
    ServiceCode.CONFLICTING_EVENT_ID: "event_id was already applied with other content "
    "(or on another topic)",
    ServiceCode.CONFLICTING_REQUEST_ID: "request_id was already answered for a request with "
    "another body",
    ServiceCode.USER_EVENT_LIMIT: "the user already has as many events as are kept "
    "(max_events_per_user)",
    ServiceCode.USER_LOAN_LIMIT: "the user already has as many open loans as are kept",
}


def utc_now() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)


def decode_limits(settings: Settings) -> DecodeLimits:
    """Decoding bounds from settings."""
    return DecodeLimits(
        max_record_bytes=settings.max_record_bytes,
        future_tolerance=timedelta(seconds=settings.future_tolerance_seconds),
        horizon=timedelta(days=settings.event_horizon_days),
    )


@dataclass
class BatchReport:
    """What happened to one batch, per topic."""

    applied: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    duplicate: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    dead_lettered: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    #: Status changes published (new ones, and any a crash left unpublished).
    announced: int = 0


class Pending(NamedTuple):
    """A decoded event waiting to be folded, with the record it came in. A named tuple: one
    is made per event folded (~0.4 µs less to make than a dataclass, and no dict)."""

    record: InboundRecord
    event: InputEvent
    fingerprint: int
    digest: int
    #: Its ledger entry when decoding made it (:mod:`streams.core.plain_records`).
    entry: bytes | None


def pending_of(
    record: InboundRecord, kind: RecordKind, *, now: datetime, limits: DecodeLimits
) -> Pending:
    """An event record decoded for folding: in one compiled call when plain
    (:mod:`streams.core.plain_records`), else by Python, which raises
    :class:`~streams.core.decoding.RejectedRecord` for a record it refuses."""
    plain = decode_plain(
        kind, record.key, record.value, now=now, limits=limits, headers=record.headers
    )
    if plain is not None:
        event = plain.event
        return Pending(record, event, fingerprint(event.event_id), plain.digest, plain.entry)
    decoded = decode_record(
        kind, record.key, record.value, now=now, limits=limits, headers=record.headers
    )
    assert not isinstance(decoded, LoanRequest)  # event topics decode to events
    return Pending(record, decoded, fingerprint(decoded.event_id), content_digest(decoded), None)


class Retrier:
    """Retries store calls that fail with :class:`~streams.errors.Unavailable`."""

    def __init__(self, metrics: Metrics, should_stop: Callable[[], bool]) -> None:
        self.metrics = metrics
        self.should_stop = should_stop

    def _retried(self, operation: str, error: BaseException | None, attempt: int) -> None:
        self.metrics.store_retries.labels(operation).inc()
        cause = error.__cause__ if error is not None else None
        log.warning(
            "store %s failed (%s); retry %d", operation, type(cause or error).__name__, attempt
        )

    def _log_retry(self, operation: str, after: int) -> Callable[[RetryCallState], None]:
        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            self._retried(operation, error, state.attempt_number + after)

        return before_sleep

    async def _first_failure(self, operation: str, error: Unavailable) -> None:
        """The first attempt failed: count and log it as retry 1 and wait the first backoff
        (the retry loop then goes on from the second)."""
        self._retried(operation, error, 1)
        await asyncio.sleep(FIRST_BACKOFF_SECONDS)

    async def until_stopped(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        """Retry ``call`` with backoff until it succeeds or the process stops (then
        :class:`ShuttingDown`: the work is left for redelivery, never skipped)."""
        # The first attempt runs outside tenacity: its per-call state objects form reference
        # cycles, and at two store calls per loan request their garbage made the decider's
        # cyclic GC pause for 25-45 ms every few seconds (docs/sizing.md). A failed first
        # attempt counts as the first retry, so the loop's figures and log lines are as before.
        try:
            return await call()
        except Unavailable as exc:
            if self.should_stop():
                raise ShuttingDown(f"stopping while store {operation} fails") from exc
            await self._first_failure(operation, exc)

        def stop(_: RetryCallState) -> bool:
            return self.should_stop()

        retrying = AsyncRetrying(
            retry=retry_if_exception_type(Unavailable),
            wait=wait_exponential(multiplier=2 * FIRST_BACKOFF_SECONDS, max=2.0),
            stop=stop,
            before_sleep=self._log_retry(operation, after=1),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await call()
        except Unavailable as exc:
            raise ShuttingDown(f"stopping while store {operation} fails") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def bounded(self, operation: str, call: Callable[[], Awaitable[T]], seconds: float) -> T:
        """Retry ``call`` for at most ``seconds``; then its :class:`Unavailable` is raised."""
        started = time.monotonic()
        try:
            return await call()  # outside tenacity, as in until_stopped
        except Unavailable as exc:
            if time.monotonic() - started >= seconds:
                raise
            await self._first_failure(operation, exc)
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(Unavailable),
            wait=wait_exponential(multiplier=2 * FIRST_BACKOFF_SECONDS, max=1.0),
            stop=stop_after_delay(max(0.0, seconds - (time.monotonic() - started))),
            before_sleep=self._log_retry(operation, after=1),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await call()
        raise AssertionError("unreachable")  # pragma: no cover


class DeadLetterer:
    """Publishes rejected records to the dead-letter topic, watches for a storm of them and
    logs them as rate-limited summaries (a flood of garbage must not flood the log)."""

    def __init__(
        self,
        agent: str,
        settings: Settings,
        sink: RecordSink,
        topic: str,
        metrics: Metrics,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.agent = agent
        self.settings = settings
        self.sink = sink
        self.topic = topic
        self.metrics = metrics
        self.clock = clock
        self.storm = DeadLetterStormGuard(
            window=settings.storm_window_records,
            min_records=settings.storm_min_records,
            ratio=settings.storm_ratio,
            window_seconds=settings.storm_window_seconds,
        )
        self.rejections = RejectionSummary(settings.dead_letter_log_interval_seconds)
        self.metrics.dead_letter_storm.labels(agent).set(0)

    def accepted(self) -> None:
        """One record was accepted (for the storm guard's share)."""
        self.storm.observe(None)

    async def reject(self, record: InboundRecord, code: str, message: str) -> Awaitable[Any]:
        """Dead-letter one record; the awaitable completes when the broker has it."""
        self.storm.observe(code)
        self.metrics.records_dead_lettered.labels(record.topic, code).inc()
        # A summary now and then, not a line per record: codes and counts only, never a key
        # or a value; `dlq list` shows the records.
        if line := self.rejections.add(code, time.monotonic()):
            log.warning("%s %s", self.agent, line)
        key, value, headers = dead_letter_record(
            record, code, message, self.clock(), self.settings.max_message_bytes
        )
        return await self.sink.send(self.topic, key, value, headers)

    def tick(self) -> None:
        """Called every second or so, records or not: a storm ends on a quiet topic too, and
        the last rejections of a burst are reported."""
        self.watch_storm()
        if line := self.rejections.due(time.monotonic()):
            log.warning("%s %s", self.agent, line)

    def watch_storm(self) -> None:
        """Report a dead-letter storm loudly, once, when it starts and when it ends."""
        change = self.storm.update(time.monotonic())
        if change is None:
            return
        share = f"{self.storm.rejected_share:.0%}"
        if change:
            self.metrics.dead_letter_storm.labels(self.agent).set(1)
            self.metrics.dead_letter_storms.labels(self.agent).inc()
            log.error(
                "DEAD-LETTER STORM in %s: %s of the last %d records rejected (top codes: %s); "
                "is an upstream producer sending bad data?",
                self.agent,
                share,
                self.storm.records,
                ", ".join(f"{code} {n:,}" for code, n in self.storm.top_codes()),
            )
        else:
            self.metrics.dead_letter_storm.labels(self.agent).set(0)
            log.warning("dead-letter storm in %s is over (%s rejected)", self.agent, share)

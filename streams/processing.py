"""The imperative shell around the core: decode → fold/decide → store → publish.

Independent of Faust: the agents in :mod:`streams.app` hand batches of
:class:`InboundRecord` here and ack them only after these coroutines return. Every record
ends as exactly one of applied, duplicate or dead-lettered.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import redis.exceptions
from prometheus_client import Histogram
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

from schemas.models import InputEvent, LineStatusChanged, LoanDecision, LoanRequest
from streams.adapters.kafka_sink import (
    InboundRecord,
    RecordSink,
    dead_letter_headers,
    fit_dead_letter,
)
from streams.adapters.redis_store import RedisStore, StoredUser, UserWrite, fingerprint
from streams.core.decision import (
    decide,
    decide_score_unavailable,
    decide_without_history,
    status_reasons,
)
from streams.core.decoding import DecodeLimits, RejectedRecord, decode_record
from streams.core.policy import Policy
from streams.core.scoring import Assessment, LineStatus, assess
from streams.core.state import fold_events
from streams.core.storm import DeadLetterStormGuard
from streams.metrics import Metrics
from streams.settings import Settings
from streams.topics import Topics

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Errors that mean "Redis is unreachable or cannot write right now": retried, never skipped.
#: (Out of memory and read-only replicas heal when an operator acts; crashing would not help.)
REDIS_TRANSIENT = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.TryAgainError,
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.MasterDownError,
    redis.exceptions.ClusterDownError,
    OSError,
)
#: Redis refusing creditline's credentials or a command: an operator must act, so waiting
#: (as for an outage) would only hide it. Checked before REDIS_TRANSIENT, whose
#: ConnectionError includes the first two.
REDIS_REFUSED = (
    redis.exceptions.AuthenticationError,
    redis.exceptions.AuthorizationError,
    redis.exceptions.NoPermissionError,
)


def redis_outage(error: BaseException) -> bool:
    """True for Redis errors worth retrying (unreachable, loading, failing over…)."""
    return isinstance(error, REDIS_TRANSIENT) and not isinstance(error, REDIS_REFUSED)


#: Error code for a record whose processing raised an unexpected error (a bug, not bad input).
PROCESSING_ERROR = "PROCESSING_ERROR"
MAX_CONFLICT_ROUNDS = 50


class ShuttingDown(Exception):
    """The worker is stopping while a batch is unapplied: leave it unacked for redelivery."""


def tune_garbage_collector() -> None:
    """Fewer, cheaper cyclic-GC passes for a process that folds events.

    A batch allocates hundreds of thousands of short-lived objects; at Python's default
    thresholds the collector runs every 700 allocations and keeps re-scanning the long-lived
    objects of Faust, aiokafka and pydantic: ~15-30 % of a busy worker's CPU. Objects built
    at start-up are frozen out of collection, and young objects are collected less often
    (cycles are rare on the hot path; their memory is reclaimed a little later).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


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


def state_summary(assessment: Assessment, events_applied: int) -> dict[str, str]:
    """The readable fields stored beside a user's state (what operators and the app read).

    ``status`` and ``status_since`` are the stored line status that hysteresis continues from.
    """
    return {
        "score": str(assessment.score),
        "status": assessment.status.value,
        "status_since": assessment.line.since.isoformat(),
        "status_settled": "1" if assessment.line.settled else "0",
        "segment": assessment.segment,
        "credit_limit": f"{assessment.credit_limit:.2f}",
        "available_limit": f"{assessment.available_limit:.2f}",
        "score_as_of": assessment.score_as_of.isoformat(),
        "events_applied": str(events_applied),
        "scorer_version": assessment.scorer_version,
        "policy_version": assessment.policy_version,
    }


@dataclass
class BatchReport:
    """What happened to one batch, per topic."""

    applied: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    duplicate: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    dead_lettered: dict[str, int] = field(default_factory=lambda: defaultdict(int))


@dataclass
class _Pending:
    record: InboundRecord
    event: InputEvent
    fingerprint: int


class _Shell:
    """Shared plumbing: dead-lettering, the storm guard and Redis retries."""

    agent = "shell"

    def __init__(
        self,
        settings: Settings,
        store: RedisStore,
        sink: RecordSink,
        metrics: Metrics,
        policy: Callable[[], Policy],
        *,
        clock: Callable[[], datetime] = utc_now,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.storm = DeadLetterStormGuard(
            window=settings.storm_window_records,
            min_records=settings.storm_min_records,
            ratio=settings.storm_ratio,
        )
        self.topics = Topics.from_settings(settings)
        self.store = store
        self.sink = sink
        self.metrics = metrics
        self.metrics.dead_letter_storm.labels(self.agent).set(0)
        self.clock = clock
        self.should_stop = should_stop
        self.limits = decode_limits(settings)

    def _watch_storm(self) -> None:
        """Report a dead-letter storm loudly, once, when it starts and when it ends."""
        change = self.storm.update()
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
                self.storm.window,
                self.storm.top_codes(),
            )
        else:
            self.metrics.dead_letter_storm.labels(self.agent).set(0)
            log.warning("dead-letter storm in %s is over (%s rejected)", self.agent, share)

    async def _dead_letter(self, record: InboundRecord, code: str, message: str) -> Awaitable[Any]:
        self.metrics.records_dead_lettered.labels(record.topic, code).inc()
        headers = dead_letter_headers(record, code, message, self.clock())
        # Within what the topic takes (a record may have arrived compressed).
        key, value, headers = fit_dead_letter(record, headers, self.settings.max_message_bytes)
        # The message names the field, never its value; the offset locates the record.
        log.warning(
            "dead-lettered %s[%d]@%d: %s", record.topic, record.partition, record.offset, code
        )
        return await self.sink.send(self.topics.dead_letter, key, value, headers)

    def _log_retry(self, operation: str) -> Callable[[RetryCallState], None]:
        def before_sleep(state: RetryCallState) -> None:
            self.metrics.store_retries.labels(operation).inc()
            error = state.outcome.exception() if state.outcome else None
            log.warning(
                "redis %s failed (%s); retry %d",
                operation,
                type(error).__name__,
                state.attempt_number,
            )

        return before_sleep

    async def _until_stopped(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        """Retry ``call`` on Redis errors with backoff until it succeeds or the worker stops."""

        def stop(_: RetryCallState) -> bool:
            return self.should_stop()

        retrying = AsyncRetrying(
            retry=retry_if_exception(redis_outage),
            wait=wait_exponential(multiplier=0.05, max=2.0),
            stop=stop,
            before_sleep=self._log_retry(operation),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await call()
        except REDIS_REFUSED:
            raise
        except REDIS_TRANSIENT as exc:
            raise ShuttingDown(f"stopping while redis {operation} fails") from exc
        raise AssertionError("unreachable")  # pragma: no cover


class EventFolder(_Shell):
    """Folds batches of repayment, spending and asset records into user state in Redis."""

    agent = "fold_events"

    async def process(self, records: Sequence[InboundRecord]) -> BatchReport:
        """Apply a batch; returns once every record is applied, duplicate or dead-lettered."""
        started = time.perf_counter()
        report = BatchReport()
        now = self.clock()
        policy = self.policy()  # one version for the whole batch
        deliveries: list[Awaitable[Any]] = []
        by_user: dict[str, list[_Pending]] = defaultdict(list)
        for topic, count in Counter(record.topic for record in records).items():
            self.metrics.records_consumed.labels(topic).inc(count)
        for record in records:
            try:
                kind = self.topics.kind_of(record.topic)
                event = decode_record(
                    kind,
                    record.key,
                    record.value,
                    now=now,
                    limits=self.limits,
                    headers=record.headers,
                )
            except RejectedRecord as rejected:
                self.storm.observe(rejected.code)
                deliveries.append(await self._dead_letter(record, rejected.code, rejected.message))
                report.dead_lettered[record.topic] += 1
                continue
            self.storm.observe(None)
            assert not isinstance(event, LoanRequest)
            by_user[event.user_id].append(_Pending(record, event, fingerprint(event.event_id)))

        failed, outbox = await self._store(by_user, report, policy)
        status_deliveries = [
            await self.sink.send(self.topics.line_status, user.encode(), payload)
            for user, payload in outbox.items()
        ]
        for pending in failed:
            deliveries.append(
                await self._dead_letter(
                    pending.record,
                    PROCESSING_ERROR,
                    "the event could not be folded (internal error)",
                )
            )
            report.dead_lettered[pending.record.topic] += 1
        self._watch_storm()
        await asyncio.gather(*deliveries, *status_deliveries)
        # Published: the outbox can be emptied (a crash before this republishes, never loses).
        await self._until_stopped("clear_outbox", partial(self.store.clear_status_events, outbox))

        applied_at = time.time()
        for topic, count in report.applied.items():
            self.metrics.records_applied.labels(topic).inc(count)
        for topic, count in report.duplicate.items():
            self.metrics.records_duplicate.labels(topic).inc(count)
        self.metrics.batch_size.observe(len(records))
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        self.metrics.last_batch_timestamp.set(applied_at)
        return report

    async def _store(
        self, by_user: dict[str, list[_Pending]], report: BatchReport, policy: Policy
    ) -> tuple[list[_Pending], dict[str, bytes]]:
        """Fold and write every user, re-folding users whose write conflicted. Returns the
        records that could not be folded and the status-change events to publish."""
        remaining = dict(by_user)
        failed: list[_Pending] = []
        outbox: dict[str, bytes] = {}
        for _ in range(MAX_CONFLICT_ROUNDS):
            if not remaining:
                return failed, outbox
            candidates = {u: [p.fingerprint for p in ps] for u, ps in remaining.items()}
            stored = await self._until_stopped("load", partial(self.store.load, candidates))
            writes: list[UserWrite] = []
            outcomes: dict[str, tuple[list[_Pending], list[_Pending]]] = {}
            for user, pendings in remaining.items():
                current = stored[user]
                if current.pending_status_event is not None:
                    outbox[user] = current.pending_status_event
                try:
                    write, fresh, dupes = self._fold_user(user, current, pendings, policy)
                except Exception:
                    log.exception("folding a user's events failed; dead-lettering them")
                    failed.extend(pendings)
                    continue
                outcomes[user] = (fresh, dupes)
                if write is not None:
                    writes.append(write)
            events_of = {w.user_id: w.status_event for w in writes if w.status_event}
            conflicts = set(await self._until_stopped("save", partial(self.store.save, writes)))
            if conflicts:
                self.metrics.store_conflicts.inc(len(conflicts))
            applied_at = self.clock()
            lag_of_topic: dict[str, Histogram] = {}
            for user, (fresh, dupes) in outcomes.items():
                if user in conflicts:
                    continue
                if user in events_of:
                    outbox[user] = events_of[user]
                for p in fresh:
                    topic = p.record.topic
                    report.applied[topic] += 1
                    if topic not in lag_of_topic:
                        lag_of_topic[topic] = self.metrics.event_time_lag.labels(topic)
                    lag = max(0.0, (applied_at - p.event.occurred_at).total_seconds())
                    lag_of_topic[topic].observe(lag)
                for p in dupes:
                    report.duplicate[p.record.topic] += 1
            remaining = {u: remaining[u] for u in conflicts}
        raise RuntimeError(f"{len(remaining)} users still conflicting after retries")

    def _fold_user(
        self, user: str, current: StoredUser, pendings: list[_Pending], policy: Policy
    ) -> tuple[UserWrite | None, list[_Pending], list[_Pending]]:
        seen = set(current.already_applied)
        fresh: list[_Pending] = []
        dupes: list[_Pending] = []
        for p in pendings:
            if p.fingerprint in seen:
                dupes.append(p)
                continue
            seen.add(p.fingerprint)
            fresh.append(p)
        state = fold_events(current.state, [p.event for p in fresh])
        if not fresh or state is None:
            return None, fresh, dupes
        # The stored line status ignores promotions: campaigns never flip it back and forth.
        assessment = assess(state, state.as_of, policy, current.line, with_promotions=False)
        self.metrics.scores.observe(assessment.score)
        status_event = None
        if current.line is None or assessment.line.status is not current.line.status:
            status_event = self._status_event(current.line, assessment, policy)
        write = UserWrite(
            user_id=user,
            expected_version=current.version,
            state=state,
            summary=state_summary(assessment, state.events_applied),
            fingerprints=[p.fingerprint for p in fresh],
            status_event=status_event,
        )
        return write, fresh, dupes

    def _status_event(
        self, previous: LineStatus | None, assessment: Assessment, policy: Policy
    ) -> bytes:
        self.metrics.line_status_changes.labels(assessment.status.value).inc()
        event = LineStatusChanged(
            user_id=assessment.user_id,
            changed_at=assessment.line.since,
            previous_status=previous.status if previous else None,
            status=assessment.status,
            credit_limit=assessment.credit_limit,
            score=assessment.score,
            reasons=status_reasons(assessment, policy, self.settings.reason_language),
            policy_version=assessment.policy_version,
        )
        return event.model_dump_json().encode()


class LoanDecider(_Shell):
    """Answers loan requests from the live state, idempotently per ``request_id``."""

    agent = "answer_loan_requests"

    async def process(self, records: Sequence[InboundRecord]) -> list[LoanDecision]:
        """Answer each request (or dead-letter it); returns the decisions published."""
        decisions: list[LoanDecision] = []
        deliveries: list[Awaitable[Any]] = []
        for record in records:
            self.metrics.records_consumed.labels(record.topic).inc()
            try:
                request = decode_record(
                    self.topics.kind_of(record.topic),
                    record.key,
                    record.value,
                    now=self.clock(),
                    limits=self.limits,
                    headers=record.headers,
                )
            except RejectedRecord as rejected:
                self.storm.observe(rejected.code)
                deliveries.append(await self._dead_letter(record, rejected.code, rejected.message))
                continue
            self.storm.observe(None)
            assert isinstance(request, LoanRequest)
            try:
                decision, payload, repeated = await self._answer(request)
            except REDIS_REFUSED:
                raise
            except Exception:
                # A bug (arithmetic at an extreme…) must not stop the worker: never silent.
                log.exception("answering a loan request failed; dead-lettering it")
                message = "the request could not be answered (internal error)"
                deliveries.append(await self._dead_letter(record, PROCESSING_ERROR, message))
                continue
            deliveries.append(
                await self.sink.send(self.topics.loan_decisions, request.user_id.encode(), payload)
            )
            if repeated:
                self.metrics.records_duplicate.labels(record.topic).inc()
            else:
                self.metrics.records_applied.labels(record.topic).inc()
                self.metrics.decisions.labels(decision.outcome.value).inc()
                self.metrics.decisions_by_status.labels(
                    decision.displayed_status.value, decision.effective_status.value
                ).inc()
                if decision.overrides_displayed_status:
                    self.metrics.decision_overrides.inc()
            if record.timestamp is not None:
                self.metrics.decision_seconds.observe(max(0.0, time.time() - record.timestamp))
            decisions.append(decision)
        self._watch_storm()
        await asyncio.gather(*deliveries)
        return decisions

    async def _bounded(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        """Retry a Redis call for at most ``score_unavailable_wait_seconds``."""
        retrying = AsyncRetrying(
            retry=retry_if_exception(redis_outage),
            wait=wait_exponential(multiplier=0.05, max=1.0),
            stop=stop_after_delay(self.settings.score_unavailable_wait_seconds),
            before_sleep=self._log_retry(operation),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await call()
        raise AssertionError("unreachable")  # pragma: no cover

    async def _answer(self, request: LoanRequest) -> tuple[LoanDecision, bytes, bool]:
        """The decision for a request, its wire bytes, and whether it was decided before."""
        policy = self.policy()  # exactly one version per decision
        language = self.settings.reason_language
        try:
            state, line = await self._bounded(
                "read_state", partial(self.store.read_user, request.user_id)
            )
        except REDIS_REFUSED:
            raise
        except REDIS_TRANSIENT:
            # Never approve blindly: without a successful read a person reviews.
            decision = decide_score_unavailable(request, self.clock(), policy, language)
            return decision, decision.model_dump_json().encode(), False
        if state is None:
            decision = decide_without_history(request, self.clock(), policy, language)
        else:
            at = request.requested_at
            assessment = assess(state, at, policy, line)
            baseline = None
            if assessment.promotion is not None:
                baseline = assess(state, at, policy, line, with_promotions=False)
            decision = decide(
                request,
                assessment,
                self.clock(),
                policy,
                without_promotion=baseline,
                language=language,
            )
        payload = decision.model_dump_json().encode()
        ttl = self.settings.decision_retention_days * 86400
        try:
            earlier = await self._bounded(
                "remember_decision",
                lambda: self.store.remember_decision(
                    request.user_id, request.request_id, payload, ttl
                ),
            )
        except REDIS_REFUSED:
            raise
        except REDIS_TRANSIENT:
            # Unrecorded decisions could differ on redelivery; only a review is safe.
            decision = decide_score_unavailable(request, self.clock(), policy, language)
            return decision, decision.model_dump_json().encode(), False
        if earlier is not None:
            return LoanDecision.model_validate_json(earlier), earlier, True
        return decision, payload, False

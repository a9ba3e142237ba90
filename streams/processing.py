"""The imperative shell around the core: decode → fold/decide → store → publish.

Independent of Faust: the agents in :mod:`streams.app` hand batches of
:class:`InboundRecord` here and ack them only after these coroutines return. Every record
ends as exactly one of applied, duplicate or dead-lettered.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
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

from schemas.models import (
    EffectiveStatus,
    InputEvent,
    LineStatusChanged,
    LoanDecision,
    LoanRequest,
)
from streams.adapters.kafka_sink import (
    InboundRecord,
    RecordSink,
    dead_letter_headers,
    fit_dead_letter,
)
from streams.adapters.redis_client import NotReplicated
from streams.adapters.redis_store import RedisStore, StoredUser, UserWrite, trajectory_summary
from streams.core.answer import answer, judgement_instant
from streams.core.decision import (
    decide_policy_unavailable,
    decide_score_unavailable,
    status_reasons,
)
from streams.core.decoding import DecodeLimits, RejectedRecord, decode_record
from streams.core.ledger import content_digest, encode_entry, fingerprint
from streams.core.policy import Policy
from streams.core.reasons import ReasonCode, reason
from streams.core.rejections import RejectionSummary
from streams.core.scoring import Assessment, LineStatus
from streams.core.state import UserState
from streams.core.storm import DeadLetterStormGuard
from streams.core.timeline import (
    START,
    Checkpoint,
    PolicyTimeline,
    at_time,
    needs_ledger,
    needs_ledger_at,
    standing,
    update,
)
from streams.metrics import Metrics
from streams.settings import Settings
from streams.topics import Topics

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Errors that mean "Redis is unreachable or cannot write right now": retried, never skipped.
#: (Out of memory and read-only replicas heal when an operator acts; crashing would not help.
#: A write too few replicas acknowledged could be lost in a failover: not stored yet.)
REDIS_TRANSIENT = (
    NotReplicated,
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
#: Error code for an event whose ``event_id`` was already applied with other content (or on
#: another topic): a conflict, not a duplicate — never silently counted as one.
CONFLICTING_EVENT_ID = "CONFLICTING_EVENT_ID"
_FAILED_MESSAGE = "the event could not be folded (internal error)"
_CONFLICT_MESSAGE = "event_id was already applied with other content (or on another topic)"
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


def state_summary(assessment: Assessment, state: UserState | None) -> dict[str, str]:
    """The readable fields stored beside a user's state (what operators and the app read):
    the standing at the last review."""
    return {
        "score": str(assessment.score),
        "status": assessment.status.value,
        "status_since": assessment.line.since.isoformat(),
        "status_settled": "1" if assessment.line.settled else "0",
        "segment": assessment.segment,
        "credit_limit": f"{assessment.credit_limit:.2f}",
        "available_limit": f"{assessment.available_limit:.2f}",
        "score_as_of": assessment.score_as_of.isoformat(),
        "events_applied": str(state.events_applied if state else 0),
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
    digest: int


class _Shell:
    """Shared plumbing: dead-lettering, the storm guard and Redis retries."""

    agent = "shell"

    def __init__(
        self,
        settings: Settings,
        store: RedisStore,
        sink: RecordSink,
        metrics: Metrics,
        timelines: Callable[[], PolicyTimeline],
        *,
        clock: Callable[[], datetime] = utc_now,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self.settings = settings
        self.timelines = timelines
        self.storm = DeadLetterStormGuard(
            window=settings.storm_window_records,
            min_records=settings.storm_min_records,
            ratio=settings.storm_ratio,
            window_seconds=settings.storm_window_seconds,
        )
        self.rejections = RejectionSummary(settings.dead_letter_log_interval_seconds)
        self.topics = Topics.from_settings(settings)
        self.store = store
        self.sink = sink
        self.metrics = metrics
        self.metrics.dead_letter_storm.labels(self.agent).set(0)
        self.clock = clock
        self.should_stop = should_stop
        self.limits = decode_limits(settings)

    def tick(self) -> None:
        """Called every second or so, records or not: a storm ends on a quiet topic too, and
        the last rejections of a burst are reported."""
        self._watch_storm()
        if line := self.rejections.due(time.monotonic()):
            log.warning("%s %s", self.agent, line)

    def _watch_storm(self) -> None:
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

    async def _dead_letter(self, record: InboundRecord, code: str, message: str) -> Awaitable[Any]:
        self.metrics.records_dead_lettered.labels(record.topic, code).inc()
        headers = dead_letter_headers(record, code, message, self.clock())
        # A summary now and then, not a line per record (a flood of garbage would flood the
        # log): codes and counts only, never a key or value; `dlq list` shows the records.
        if line := self.rejections.add(code, time.monotonic()):
            log.warning("%s %s", self.agent, line)
        # Within what the topic takes (a record may have arrived compressed).
        key, value, headers = fit_dead_letter(record, headers, self.settings.max_message_bytes)
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
    """Folds batches of repayment, spending and asset records into user state in Redis, and
    reviews users whose status may change with time alone (:meth:`review`)."""

    agent = "fold_events"

    async def process(self, records: Sequence[InboundRecord]) -> BatchReport:
        """Apply a batch; returns once every record is applied, duplicate or dead-lettered."""
        started = time.perf_counter()
        report = BatchReport()
        now = self.clock()
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
            by_user[event.user_id].append(
                _Pending(record, event, fingerprint(event.event_id), content_digest(event))
            )
        partitions = {u: {p.record.partition for p in ps} for u, ps in by_user.items()}
        failed, conflicting, outbox = await self._store(by_user, partitions, report, now)
        status_deliveries = [
            await self.sink.send(self.topics.line_status, user.encode(), payload)
            for user, payload in outbox.items()
        ]
        for pending, code, message in [
            *(
                (p, PROCESSING_ERROR, "the event could not be folded (internal error)")
                for p in failed
            ),
            *(
                (p, CONFLICTING_EVENT_ID, "event_id was already applied with other content")
                for p in conflicting
            ),
        ]:
            deliveries.append(await self._dead_letter(pending.record, code, message))
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

    async def review(self, due: Mapping[str, set[int]]) -> int:
        """Review users whose next review instant has passed (time alone may change their
        status: a freeze running out, the dwell time ending, a month starting, a policy
        taking effect); publishes the changes. ``due`` maps users to the event partitions
        whose schedule named them. Returns the users whose status changed."""
        if not due:
            return 0
        now = self.clock()
        report = BatchReport()
        _, _, outbox = await self._store({u: [] for u in due}, dict(due), report, now)
        deliveries = [
            await self.sink.send(self.topics.line_status, user.encode(), payload)
            for user, payload in outbox.items()
        ]
        await asyncio.gather(*deliveries)
        await self._until_stopped("clear_outbox", partial(self.store.clear_status_events, outbox))
        return len(outbox)

    async def _store(
        self,
        by_user: dict[str, list[_Pending]],
        partitions: Mapping[str, set[int]],
        report: BatchReport,
        now: datetime,
    ) -> tuple[list[_Pending], list[_Pending], dict[str, bytes]]:
        """Fold and write every user, re-folding users whose write conflicted. Returns the
        records that could not be folded, those reusing an event id with other content, and
        the status-change events to publish."""
        remaining = dict(by_user)
        failed: list[_Pending] = []
        conflicting: list[_Pending] = []
        outbox: dict[str, bytes] = {}
        timelines = self.timelines()  # one set of policy versions for the whole batch
        for _ in range(MAX_CONFLICT_ROUNDS):
            if not remaining:
                return failed, conflicting, outbox
            candidates = {u: [p.fingerprint for p in ps] for u, ps in remaining.items()}
            stored = await self._until_stopped("load", partial(self.store.load, candidates))
            wanted = [u for u in remaining if self._needs_ledger(stored[u], remaining[u], now)]
            ledgers = await self._until_stopped(
                "load_ledger", partial(self.store.load_ledgers, wanted)
            )
            writes: list[UserWrite] = []
            outcomes: dict[str, _UserOutcome] = {}
            for user, pendings in remaining.items():
                current = stored[user]
                if current.pending_status_event is not None:
                    outbox[user] = current.pending_status_event
                try:
                    outcome = self._fold_user(
                        user, current, pendings, ledgers.get(user), timelines, now
                    )
                except Exception:
                    log.exception("folding a user's events failed; dead-lettering them")
                    failed.extend(pendings)
                    continue
                outcomes[user] = outcome
                if outcome.write is not None:
                    writes.append(outcome.write)
            events_of = {w.user_id: w.status_event for w in writes if w.status_event}
            conflicts = set(await self._until_stopped("save", partial(self.store.save, writes)))
            if conflicts:
                self.metrics.store_conflicts.inc(len(conflicts))
            schedule = {
                (partition, user): (
                    outcome.write.checkpoint.trajectory.next_review
                    if outcome.write is not None
                    else outcome.next_review
                )
                for user, outcome in outcomes.items()
                if user not in conflicts
                for partition in partitions.get(user, ())
            }
            await self._until_stopped("schedule", partial(self.store.schedule, schedule))
            applied_at = self.clock()
            lag_of_topic: dict[str, Histogram] = {}
            for user, outcome in outcomes.items():
                if user in conflicts:
                    continue
                if user in events_of:
                    outbox[user] = events_of[user]
                if outcome.restated:
                    self.metrics.line_status_restatements.inc()
                for p in outcome.fresh:
                    topic = p.record.topic
                    report.applied[topic] += 1
                    if topic not in lag_of_topic:
                        lag_of_topic[topic] = self.metrics.event_time_lag.labels(topic)
                    lag = max(0.0, (applied_at - p.event.occurred_at).total_seconds())
                    lag_of_topic[topic].observe(lag)
                for p in outcome.duplicates:
                    report.duplicate[p.record.topic] += 1
                conflicting.extend(outcome.conflicting)
            remaining = {u: remaining[u] for u in conflicts}
        raise RuntimeError(f"{len(remaining)} users still conflicting after retries")

    def _needs_ledger(self, current: StoredUser, pendings: list[_Pending], now: datetime) -> bool:
        """Whether a user's earlier events must be read: a re-sent event id (is its content
        the same?), a late event, events not reviewed yet, or an event leaving the window."""
        if any(p.fingerprint in current.already_applied for p in pendings):
            return True
        fresh = {p.fingerprint: p.event for p in pendings}
        return needs_ledger(
            current.checkpoint,
            list(fresh.values()),
            current.latest_event_at,
            now,
            self.limits.horizon,
        )

    def _fold_user(
        self,
        user: str,
        current: StoredUser,
        pendings: list[_Pending],
        ledger: Mapping[int, tuple[InputEvent, int]] | None,
        timelines: PolicyTimeline,
        now: datetime,
    ) -> _UserOutcome:
        digests: dict[int, int] = {fp: d for fp, (_, d) in (ledger or {}).items()}
        fresh: list[_Pending] = []
        dupes: list[_Pending] = []
        conflicting: list[_Pending] = []
        for p in pendings:
            known = digests.get(p.fingerprint)
            if known is None and p.fingerprint in current.already_applied:
                known = p.digest  # in the seen set but gone from the ledger: left the window
            if known is None:
                digests[p.fingerprint] = p.digest
                fresh.append(p)
            elif known == p.digest:
                dupes.append(p)
            else:
                conflicting.append(p)
        upcoming = current.checkpoint.trajectory.next_review
        reviewed = current.checkpoint.at
        policy_change = timelines.next_change_after(reviewed) if reviewed else None
        if (
            not fresh
            and (upcoming is None or upcoming > now)
            and (policy_change is None or policy_change > now)
        ):
            return _UserOutcome(None, fresh, dupes, conflicting, next_review=upcoming)
        horizon = self.limits.horizon
        earlier = [event for event, _ in ledger.values()] if ledger is not None else None
        checkpoint = update(
            current.checkpoint, [p.event for p in fresh], earlier, timelines, now, horizon
        )
        if checkpoint == current.checkpoint and not fresh:
            return _UserOutcome(None, fresh, dupes, conflicting, next_review=upcoming)
        # The ledger: the new entries appended, or (events left the window) rewritten.
        entries = [encode_entry(p.event, p.digest) for p in fresh]
        removed: list[int] = []
        rewrite = False
        size = current.ledger_size + len(fresh)
        latest = max(
            [p.event.occurred_at for p in fresh]
            + ([current.latest_event_at] if current.latest_event_at else []),
            default=None,
        )
        if ledger is not None:
            limit = now - horizon
            gone = [fp for fp, (event, _) in ledger.items() if event.occurred_at <= limit]
            if gone:
                removed = gone
                rewrite = True
                kept = [
                    encode_entry(event, digest)
                    for fp, (event, digest) in ledger.items()
                    if event.occurred_at > limit
                ]
                entries = kept + entries
                size = len(entries)
        # Late: before the instant the stored status was last announced as of.
        announced = current.written_at or current.checkpoint.at
        restated = announced is not None and any(p.event.occurred_at <= announced for p in fresh)
        assessment = standing(checkpoint, timelines)
        summary: dict[str, str] = trajectory_summary(checkpoint.trajectory)
        status_event = None
        if assessment is not None:
            self.metrics.scores.observe(assessment.score)
            summary |= state_summary(assessment, checkpoint.state)
            before = current.line
            after = assessment.line
            if before is None or (before.status, before.since) != (after.status, after.since):
                policy = timelines.at(assessment.features.at)
                status_event = self._status_event(before, assessment, policy, restated=restated)
        write = UserWrite(
            user_id=user,
            expected_version=current.version,
            checkpoint=checkpoint,
            summary=summary,
            fingerprints=[p.fingerprint for p in fresh],
            entries=entries,
            rewrite=rewrite,
            removed=removed,
            latest_event_at=latest,
            ledger_size=size,
            status_event=status_event,
            written_at=now,
        )
        self._observe_intervals(current.checkpoint, checkpoint)
        past_changed = restated and _past_restated(current.checkpoint, checkpoint, announced)
        return _UserOutcome(write, fresh, dupes, conflicting, restated=past_changed)

    def _observe_intervals(self, old: Checkpoint, new: Checkpoint) -> None:
        """Event time between each new status change and the one before it (changes into or
        out of a freeze aside: freezing is immediate by design)."""
        known = set(old.trajectory.changes)
        frozen = EffectiveStatus.FROZEN
        for before, after in itertools.pairwise(new.trajectory.changes):
            if after in known or frozen in (before.status, after.status) or not after.settled:
                continue
            interval = (after.since - before.since).total_seconds()
            self.metrics.line_status_change_interval.observe(interval)

    def _status_event(
        self,
        previous: LineStatus | None,
        assessment: Assessment,
        policy: Policy,
        *,
        restated: bool,
    ) -> bytes:
        self.metrics.line_status_changes.labels(assessment.status.value).inc()
        language = self.settings.reason_language
        reasons = status_reasons(assessment, policy, language)
        if restated:
            reasons = [reason(ReasonCode.LATE_EVENT_RESTATED, language), *reasons]
        event = LineStatusChanged(
            user_id=assessment.user_id,
            changed_at=assessment.line.since,
            previous_status=previous.status if previous else None,
            status=assessment.status,
            credit_limit=assessment.credit_limit,
            score=assessment.score,
            reasons=reasons,
            policy_version=assessment.policy_version,
        )
        return event.model_dump_json().encode()


def _past_restated(old: Checkpoint, new: Checkpoint, at: datetime | None) -> bool:
    """Whether the status history up to ``at`` (when it was last announced) differs."""
    if at is None:
        return False
    before = [c for c in old.trajectory.changes if c.since <= at]
    return before != [c for c in new.trajectory.changes if c.since <= at]


@dataclass
class _UserOutcome:
    write: UserWrite | None
    fresh: list[_Pending]
    duplicates: list[_Pending]
    conflicting: list[_Pending]
    restated: bool = False
    #: The user's next review when nothing is written (the schedule is kept right anyway).
    next_review: datetime | None = None


class LoanDecider(_Shell):
    """Answers loan requests from the live state, idempotently per ``request_id``."""

    agent = "answer_loan_requests"

    def __init__(
        self,
        *args: Any,
        policy_confirmed: Callable[[datetime], Awaitable[bool]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        #: Whether every policy version in force at an instant is known (waits a little).
        self.policy_confirmed = policy_confirmed

    async def process(self, records: Sequence[InboundRecord]) -> list[LoanDecision]:
        """Answer each request (or dead-letter it); returns the decisions published."""
        decisions: list[LoanDecision] = []
        deliveries: list[Awaitable[Any]] = []
        for record in records:
            self.metrics.records_consumed.labels(record.topic).inc()
            received = self.clock()
            try:
                request = decode_record(
                    self.topics.kind_of(record.topic),
                    record.key,
                    record.value,
                    now=received,
                    limits=self.limits,
                    headers=record.headers,
                )
            except RejectedRecord as rejected:
                self.storm.observe(rejected.code)
                deliveries.append(await self._dead_letter(record, rejected.code, rejected.message))
                continue
            self.storm.observe(None)
            assert isinstance(request, LoanRequest)
            arrival = received
            if record.log_append_time and record.timestamp is not None:
                arrival = datetime.fromtimestamp(record.timestamp, UTC)
            try:
                decision, payload, repeated = await self._answer(request, arrival, received)
            except (*REDIS_REFUSED, ShuttingDown):
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

    async def _standing_at(self, request: LoanRequest, at: datetime) -> Checkpoint:
        """The user's checkpoint at the last review instant ≤ ``at`` (reads the ledger only
        when the stored checkpoint does not reach ``at`` by time alone)."""
        stored = await self._bounded("read_state", partial(self.store.read_user, request.user_id))
        ledger = None
        if needs_ledger_at(stored.checkpoint, stored.latest_event_at, at, self.limits.horizon):
            ledger = await self._bounded(
                "read_ledger", partial(self.store.read_ledger, request.user_id)
            )
        return at_time(stored.checkpoint, ledger, self.timelines(), at, self.limits.horizon)

    async def _answer(
        self, request: LoanRequest, arrival: datetime, received: datetime
    ) -> tuple[LoanDecision, bytes, bool]:
        """The decision for a request, its wire bytes, and whether it was decided before."""
        timelines = self.timelines()
        language = self.settings.reason_language
        tolerance = timedelta(seconds=self.settings.request_time_tolerance_seconds)
        at = judgement_instant(request, arrival, tolerance)
        if at is None:
            decision = answer(request, START, timelines, None, received, language)
        elif self.policy_confirmed is not None and not await self.policy_confirmed(at):
            decision = decide_policy_unavailable(request, received, timelines.at(at), language)
        else:
            timelines = self.timelines()  # the view confirmed to cover ``at``
            try:
                checkpoint = await self._standing_at(request, at)
            except REDIS_REFUSED:
                raise
            except REDIS_TRANSIENT:
                # Never approve blindly: without a successful read a person reviews.
                policy = timelines.at(at)
                decision = decide_score_unavailable(request, received, policy, language)
                return decision, decision.model_dump_json().encode(), False
            decision = answer(request, checkpoint, timelines, at, received, language)
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
            decision = decide_score_unavailable(request, received, timelines.at(received), language)
            return decision, decision.model_dump_json().encode(), False
        if earlier is not None:
            return LoanDecision.model_validate_json(earlier), earlier, True
        return decision, payload, False


class ReviewSweeper:
    """Reviews users whose status may change with time alone, on time.

    Each user's next review instant is kept in a sorted set per event partition (written
    with every state); the worker owning a partition sweeps it every few seconds: due users
    are reviewed through the same :meth:`EventFolder.review` path as events (versioned
    writes, the outbox), so several workers, crashes and repeats change nothing but the
    timing. A policy taking effect brings every user of the partition's review forward to it.
    """

    def __init__(
        self,
        folder: EventFolder,
        *,
        batch_users: int = 500,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.folder = folder
        self.store = folder.store
        self.metrics = folder.metrics
        self.batch_users = batch_users
        self.clock = clock

    async def sweep(self, partitions: set[int]) -> int:
        """Review every due user of ``partitions``; returns how many were reviewed."""
        now = self.clock()
        in_force = [t for t in self.folder.timelines().effective_instants() if t <= now]
        reviewed = 0
        overdue = 0
        for partition in sorted(partitions):
            if in_force:
                await self.folder._until_stopped(
                    "schedule_policy", partial(self.store.schedule_policy, partition, in_force[-1])
                )
            while True:
                due = await self.folder._until_stopped(
                    "due_reviews",
                    partial(self.store.due_reviews, partition, now, self.batch_users),
                )
                if not due:
                    break
                for _, at in due:
                    self.metrics.review_lag.observe(max(0.0, now.timestamp() - at))
                await self.folder.review({user: {partition} for user, _ in due})
                reviewed += len(due)
                if len(due) < self.batch_users:
                    break
            overdue += len(
                await self.folder._until_stopped(
                    "due_reviews",
                    partial(self.store.due_reviews, partition, now - timedelta(seconds=60), 1000),
                )
            )
        self.metrics.reviews_due.set(overdue)
        return reviewed

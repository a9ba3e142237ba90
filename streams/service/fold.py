"""Folding events into users' state: decode → dedup → the status machine → one write per user.

:class:`EventFolder` takes a batch of records from the event topics (and, for
:meth:`EventFolder.review`, users whose status may change with time alone) and returns once
every record is applied, duplicate or dead-lettered. Independent of Faust and of the store's
technology: it is written against :mod:`streams.ports`.

A batch's users are read, folded and written in parts (:data:`USERS_PER_PART`): the store
reads the next part and applies the last one's writes while a part is folded, so the fold's
CPU does not wait on the store's round trips (a shuffled backfill: batch time −11 %). A part
is settled as soon as it is written (its reviews scheduled, its status changes published, its
records let go), so what a large batch holds shrinks as it goes.

Longer than most modules: one batch's whole path (decode, dedup, limits, the status
machine, the write, the announcement), read top to bottom.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, defaultdict, deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, NamedTuple, TypeVar

from prometheus_client import Counter as MetricCounter

from schemas.models import EffectiveStatus, RepaymentEvent
from streams.core import compiled
from streams.core.announcement import announced_standing, status_change_event
from streams.core.decoding import RejectedRecord
from streams.core.ledger import StoredLedger, encode_entry
from streams.core.scoring import LineStatus
from streams.core.timeline import (
    Checkpoint,
    PolicyTimeline,
    change_intervals,
    needs_ledger,
    update,
)
from streams.errors import BatchInterrupted, CreditlineError, ShuttingDown
from streams.metrics import Metrics, observe_all
from streams.ports import InboundRecord, RecordSink, StateStore, StoredUser, UserWrite
from streams.service.shell import (
    MESSAGES,
    BatchReport,
    DeadLetterer,
    Pending,
    Retrier,
    ServiceCode,
    decode_limits,
    pending_of,
    utc_now,
)
from streams.settings import Settings
from streams.topics import Topics

log = logging.getLogger(__name__)

_T = TypeVar("_T")

#: A batch's fold hands the event loop back after this many users (tens of milliseconds).
YIELD_EVERY_USERS = 256

#: A batch's users are read, folded and settled in parts of this many: Redis reads the next
#: part and writes the last while one is folded. A part's states and ledgers are what a batch
#: holds beyond its records (a 5,000-record batch at 20 events a user: 28.5 MiB at its peak
#: with parts of 1,024, 20.6 with 256), and the process keeps its high-water mark; parts
#: smaller than 256 saved little more, and 256 cost no CPU (docs/sizing.md, "Memory over
#: time"). A settled part's records, outcomes and status events are let go too.
USERS_PER_PART = 256

#: Folded parts waiting to be settled (written, announced) before the fold waits for the
#: oldest: a settling part holds its records, outcomes and status events, and settling takes
#: several round trips, each served only when the fold hands the event loop back.
MOST_PARTS_UNSETTLED = 2

#: How many times a batch re-reads and re-folds users whose write met a concurrent one.
MAX_CONFLICT_ROUNDS = 50


class EventFolder:
    """Folds batches of repayment, spending and asset records into user state in Redis, and
    reviews users whose status may change with time alone (:meth:`review`)."""

    agent = "fold_events"

    def __init__(
        self,
        settings: Settings,
        store: StateStore,
        sink: RecordSink,
        metrics: Metrics,
        timelines: Callable[[], PolicyTimeline],
        *,
        clock: Callable[[], datetime] = utc_now,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self.settings = settings
        #: Whether a rebalance is taking the partitions of the batch in flight: the batch
        #: consumer's, set once it is made (it is made after its folder); :meth:`process`
        #: then ends after a part.
        self.interrupted: Callable[[], bool] = lambda: False
        self.store = store
        self.sink = sink
        self.metrics = metrics
        self.timelines = timelines
        self.clock = clock
        self.topics = Topics.from_settings(settings)
        self.limits = decode_limits(settings)
        self.retry = Retrier(metrics, should_stop)
        self.dead_letters = DeadLetterer(
            self.agent, settings, sink, self.topics.dead_letter, metrics, clock
        )
        self._status_change_counters: dict[EffectiveStatus, MetricCounter] = {}
        for topic in self.topics.events:
            # At zero from the start: a batch ended early is rare, and a series that never
            # appears reads as "no data" on the dashboard rather than none requeued.
            metrics.records_requeued.labels(topic)

    def _status_changes(self, status: EffectiveStatus) -> MetricCounter:
        """The status-change counter of ``status``, looked up once (``labels`` takes a lock
        and builds its key on every call)."""
        counter = self._status_change_counters.get(status)
        if counter is None:
            counter = self.metrics.line_status_changes.labels(status.value)
            self._status_change_counters[status] = counter
        return counter

    def tick(self) -> None:
        """Called every second or so: a storm ends on a quiet topic too."""
        self.dead_letters.tick()

    async def process(self, records: list[InboundRecord]) -> BatchReport:
        """Apply a batch; returns once every record is applied, duplicate or dead-lettered.
        Takes ``records``: the list is emptied, and each record is let go once its user's
        write is settled (a batch in flight holds its unsettled records alone). Raises
        :class:`ShuttingDown` or :class:`BatchInterrupted` when a stop or a rebalance ends it
        after a part: it must then be read again, never acknowledged."""
        started = time.perf_counter()
        report = BatchReport()
        now = self.clock()
        size = len(records)
        consumed = Counter(record.topic for record in records)
        for topic, count in consumed.items():
            self.metrics.records_consumed.labels(topic).inc(count)
        # Grouped by key (the user id: a record whose key is not its user id is refused when
        # decoded), and decoded a part at a time as the part is read: a large batch holds
        # decoded records for the parts in flight alone (~0.85 KiB a record).
        by_key: dict[bytes | None, list[InboundRecord]] = {}
        for record in records:
            by_key.setdefault(record.key, []).append(record)
        records.clear()
        groups = list(by_key.values())
        del by_key
        tally = _Tally(report, interruptible=True)
        try:
            await self._store(groups, {}, tally, now)
            deliveries = tally.deliveries
            for pending, code in [
                *((p, ServiceCode.PROCESSING_ERROR) for p in tally.failed),
                *tally.conflicting,
            ]:
                deliveries.append(
                    await self.dead_letters.reject(pending.record, code, MESSAGES[code])
                )
                report.dead_lettered[pending.record.topic] += 1
            self.dead_letters.watch_storm()
            await asyncio.gather(*deliveries)
        except BaseException:
            # Read again whole, by this consumer or the partitions' next owner; the records
            # dead-lettered meanwhile are dead-lettered again then (at least once).
            for topic, count in consumed.items():
                if left := count - report.dead_lettered.get(topic, 0):
                    self.metrics.records_requeued.labels(topic).inc(left)
            raise

        applied_at = time.time()
        for topic, count in report.applied.items():
            self.metrics.records_applied.labels(topic).inc(count)
        for topic, count in report.duplicate.items():
            self.metrics.records_duplicate.labels(topic).inc(count)
        self.metrics.batch_size.observe(size)
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
        tally = _Tally(BatchReport())
        tally.partitions.update((u, frozenset(p)) for u, p in due.items())
        await self._store([], {u: [] for u in due}, tally, self.clock())
        return tally.report.announced

    async def _store(
        self,
        unread: list[list[InboundRecord]],
        remaining: dict[str, list[Pending]],
        tally: _Tally,
        now: datetime,
    ) -> None:
        """Fold, write and announce the users of ``unread`` (each a user's records, decoded as
        their part is read) and of ``remaining`` (decoded already), re-folding users whose
        write conflicted. A user's records are let go once it is written and announced; the
        records that could not be folded or were refused are left in ``tally``."""
        timelines = self.timelines()  # one set of policy versions for the whole batch
        for _ in range(MAX_CONFLICT_ROUNDS):
            parts = [
                *(_Unread([], chunk) for chunk in _chunks(unread)),
                *(_Unread(chunk, []) for chunk in _chunks(list(remaining))),
            ]
            unread = []
            if not parts:
                return
            conflicts = await self._fold_in_parts(parts, remaining, timelines, now, tally)
            if conflicts:
                self.metrics.store_conflicts.inc(len(conflicts))
        raise RuntimeError(f"{len(remaining)} users still conflicting after retries")

    async def _fold_in_parts(
        self,
        parts: list[_Unread],
        remaining: dict[str, list[Pending]],
        timelines: PolicyTimeline,
        now: datetime,
        tally: _Tally,
    ) -> set[str]:
        """Read, fold and settle ``parts``: the store reads the next part and settles the last
        ones (:meth:`_settle`) while a part is folded. Returns the users whose write met a
        concurrent one (the only users left in ``remaining``). When a part's read or
        settling fails, the other parts' calls are cancelled before the error is raised.

        A process asked to stop, or a batch whose partitions a rebalance is taking, folds no
        further part: the parts being settled are settled, and :class:`ShuttingDown` (or
        :class:`BatchInterrupted`) leaves the batch unacknowledged, to be read again (the
        parts written come back as recognised duplicates). A stop or a rebalance waits for
        a part, not for a backlog's whole batch (seconds of work)."""
        loads = deque([asyncio.ensure_future(self._load(parts[0], remaining, now, tally))])
        settling: list[asyncio.Future[set[str]]] = []
        try:
            for index in range(len(parts)):
                if (early := self._ended_early(tally, index, len(parts))) is not None:
                    await asyncio.gather(*settling)
                    raise early
                if index + 1 < len(parts):
                    loads.append(
                        asyncio.ensure_future(self._load(parts[index + 1], remaining, now, tally))
                    )
                users, stored, ledgers = await loads[0]
                # The part's states and ledgers are let go once it is folded: a large batch
                # under a backlog would otherwise hold them all to its end.
                loads.popleft()
                part = await self._fold_part(
                    users, remaining, stored, ledgers, timelines, now, tally
                )
                del stored, ledgers  # not held while the fold waits for settling below
                settling.append(asyncio.ensure_future(self._settle(part, remaining, tally)))
                unsettled = [f for f in settling if not f.done()]
                if len(unsettled) > MOST_PARTS_UNSETTLED:
                    await asyncio.wait(unsettled[:-MOST_PARTS_UNSETTLED])
            return {user for conflicts in await asyncio.gather(*settling) for user in conflicts}
        except BaseException:
            await cancelled([*loads, *settling])
            raise

    def _ended_early(self, tally: _Tally, index: int, parts: int) -> CreditlineError | None:
        """Why a batch ends before its part ``index`` (None: it goes on)."""
        if self.retry.should_stop():
            return ShuttingDown(f"stopping after {index} of a batch's {parts} parts")
        if tally.interruptible and self.interrupted():
            return BatchInterrupted(f"a rebalance after {index} of a batch's {parts} parts")
        return None

    async def _fold_part(
        self,
        users: Sequence[str],
        remaining: Mapping[str, list[Pending]],
        stored: Mapping[str, StoredUser],
        ledgers: dict[str, StoredLedger],
        timelines: PolicyTimeline,
        now: datetime,
        tally: _Tally,
    ) -> _Part:
        """Fold one part's users: their writes, outcomes and status events to publish. Each
        user's ledger is taken out of ``ledgers`` as it is folded: read by the compiled
        machine, a ledger is unpacked into Python values several times its stored size (a
        part of 256 users at 30 events each: 2.5 MiB), and one at a time is enough."""
        part = _Part(list(users))
        for user in users:
            if tally.visited and tally.visited % YIELD_EVERY_USERS == 0:
                # Folding is CPU alone: let the consumer's heartbeats and fetches run within
                # a batch of seconds (a missed session ends its membership), and the other
                # parts' reads and writes go out and come back. Counted over the batch, not
                # the part: awaiting a part's read that is already done does not yield.
                await asyncio.sleep(0)
            tally.visited += 1
            pendings, current = remaining[user], stored[user]
            if current.pending_status_event is not None:
                # Left by a crash between a write and its announcement: published again.
                part.announcements[user] = current.pending_status_event
            ledger = ledgers.pop(user, None)
            try:
                outcome = self.fold_user(user, current, pendings, ledger, timelines, now)
            except Exception:
                log.exception("folding a user's events failed; dead-lettering them")
                tally.failed.extend(pendings)
                continue
            write = outcome.write
            if write is not None:
                part.writes.append(write)
                if write.status_event:
                    part.announcements[user] = write.status_event
                # Kept until the part is settled without its write: the checkpoint and the
                # ledger entries go with the write once it is saved.
                outcome.write = None  # its own: a copy (dataclasses.replace) cost ~2 %
            part.outcomes[user] = outcome
        return part

    async def _settle(
        self, part: _Part, remaining: dict[str, list[Pending]], tally: _Tally
    ) -> set[str]:
        """Write a folded part; then, together, schedule its users' reviews and publish its
        status events; then empty their outbox. Its users' records are then let go (from
        ``remaining``), but for those whose write met a concurrent one, which are returned
        to be read and folded again. A crash at any point after the write is redelivered,
        found applied — a visit that finds only duplicates schedules the stored next review
        again — and republished from the outbox, never lost."""
        conflicts = set(await self._save(part.writes))
        part.writes.clear()
        settled = {u: o for u, o in part.outcomes.items() if u not in conflicts}
        part.outcomes.clear()
        schedule = {
            (partition, user): outcome.next_review
            for user, outcome in settled.items()
            for partition in tally.partitions.get(user, ())
        }
        outbox = {u: e for u, e in part.announcements.items() if u not in conflicts}
        part.announcements.clear()
        deliveries = [
            await self.sink.send(self.topics.line_status, user.encode(), payload)
            for user, payload in outbox.items()
        ]
        # The schedule's round trip to Redis and the status events' to Kafka overlap: each
        # part waited for them one after the other (up to six round trips in all).
        await asyncio.gather(
            self.retry.until_stopped("schedule", partial(self.store.schedule, schedule)),
            *deliveries,
        )
        self._count(settled, tally)
        del settled
        # Published: the outbox can be emptied (a crash before this republishes, never loses).
        await self.retry.until_stopped(
            "clear_outbox", partial(self.store.clear_status_events, outbox)
        )
        tally.report.announced += len(outbox)
        for user in part.users:
            if user not in conflicts:
                remaining.pop(user, None)
                tally.partitions.pop(user, None)
        return conflicts

    def _count(self, settled: Mapping[str, UserOutcome], tally: _Tally) -> None:
        """Count a written part's records (applied, duplicate, refused) and observe its
        event-time lags, restatements and scores."""
        applied_at = self.clock()
        report = tally.report
        lags: dict[str, list[float]] = defaultdict(list)
        scores: list[float] = []
        for outcome in settled.values():
            if outcome.restated:
                self.metrics.line_status_restatements.inc()
            if outcome.score is not None:
                scores.append(outcome.score)
            for p in outcome.fresh:
                topic = p.record.topic
                report.applied[topic] += 1
                lags[topic].append(max(0.0, (applied_at - p.event.occurred_at).total_seconds()))
            for p in outcome.duplicates:
                report.duplicate[p.record.topic] += 1
            tally.conflicting.extend(outcome.conflicting)
        # Observed once per part: one bucket walk per record was 4 % of the fold.
        for topic, values in lags.items():
            observe_all(self.metrics.event_time_lag.labels(topic), values)
        observe_all(self.metrics.scores, scores)

    async def _load(
        self, part: _Unread, remaining: dict[str, list[Pending]], now: datetime, tally: _Tally
    ) -> tuple[list[str], dict[str, StoredUser], dict[str, StoredLedger]]:
        """A part's users (its records decoded into ``remaining``), their stored state and the
        ledgers of those whose fold reads one."""
        users = [*part.users, *await self._decode(part.records, remaining, now, tally)]
        if not users:  # every record of the part refused
            return users, {}, {}
        candidates = {u: [p.event.event_id for p in remaining[u]] for u in users}
        stored = await self.retry.until_stopped("load", partial(self.store.load, candidates))
        wanted = [u for u in users if self.reads_ledger(stored[u], remaining[u], now)]
        ledgers = await self.retry.until_stopped(
            "load_ledger", partial(self.store.load_ledgers, wanted)
        )
        return users, stored, ledgers

    async def _decode(
        self,
        groups: list[list[InboundRecord]],
        remaining: dict[str, list[Pending]],
        now: datetime,
        tally: _Tally,
    ) -> list[str]:
        """Decode each user's records into ``remaining`` (refused ones dead-lettered; each
        group emptied) and note the user's partitions; the users with a record accepted."""
        users: list[str] = []
        for records in groups:
            for record in records:
                try:
                    pending = pending_of(
                        record, self.topics.kind_of(record.topic), now=now, limits=self.limits
                    )
                except RejectedRecord as rejected:
                    tally.deliveries.append(
                        await self.dead_letters.reject(record, rejected.code, rejected.message)
                    )
                    tally.report.dead_lettered[record.topic] += 1
                    continue
                self.dead_letters.accepted()
                user = pending.event.user_id
                if user not in remaining:
                    remaining[user] = []
                    users.append(user)
                remaining[user].append(pending)
            # Decoded: each record lives on in its Pending alone, let go once settled.
            records.clear()
        for user in users:
            # A user's records share a partition (they are keyed by user): one set for each
            # partition, not one for each user (~0.2 KiB a user).
            one = frozenset(p.record.partition for p in remaining[user])
            tally.partitions[user] = tally.held.setdefault(one, one)
        return users

    async def _save(self, writes: list[UserWrite]) -> list[str]:
        """Save ``writes`` (retried until the process stops); the users whose write met a
        concurrent one."""
        return await self.retry.until_stopped("save", partial(self.store.save, writes))

    def _within_limits(
        self,
        current: StoredUser,
        fresh: list[Pending],
        rejected: list[tuple[Pending, ServiceCode]],
    ) -> list[Pending]:
        """The fresh events a user's kept history has room for (in event-time order); the
        rest are added to ``rejected``: a flood from one user id cannot grow its state (and
        every later fold and decision of that user) without bound."""
        settings = self.settings
        room = settings.max_events_per_user - current.ledger_size
        open_loans: set[str] | None = None  # read from the stored fold at the first repayment
        kept: list[Pending] = []
        if len(fresh) > 1:
            fresh = sorted(fresh, key=lambda p: (p.event.occurred_at, p.event.event_id))
        for p in fresh:
            event = p.event
            if room <= 0:
                rejected.append((p, ServiceCode.USER_EVENT_LIMIT))
                continue
            if isinstance(event, RepaymentEvent):
                if open_loans is None:
                    open_loans = set(current.checkpoint.loan_ids())
                if event.loan_id not in open_loans:
                    if len(open_loans) >= settings.max_open_loans_per_user:
                        rejected.append((p, ServiceCode.USER_LOAN_LIMIT))
                        continue
                    if event.outstanding_balance:
                        open_loans.add(event.loan_id)
            room -= 1
            kept.append(p)
        return kept

    def reads_ledger(self, current: StoredUser, pendings: list[Pending], now: datetime) -> bool:
        """Whether a user's earlier events must be read: a maybe re-sent event id (is it in
        the ledger, with the same content?), a late event, events not reviewed yet, or an
        event leaving the window."""
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

    def fold_user(
        self,
        user: str,
        current: StoredUser,
        pendings: list[Pending],
        ledger: StoredLedger | None,
        timelines: PolicyTimeline,
        now: datetime,
    ) -> UserOutcome:
        """One user's fresh events folded into a write (None when nothing changes), without I/O,
        given the stored user and, when :meth:`reads_ledger` says so, its ledger."""
        digests: dict[str, int] = {}
        if ledger is not None and any(p.fingerprint in current.already_applied for p in pendings):
            # Only the ids the load flagged can be in the ledger (a superset: see StateStore.
            # load), so the ledger's digests are read for a redelivery alone, not for every
            # late event.
            digests = ledger.digests()
        fresh: list[Pending] = []
        dupes: list[Pending] = []
        conflicting: list[tuple[Pending, ServiceCode]] = []
        for p in pendings:
            # Where it is read, the ledger decides: ``already_applied`` only says so.
            known = digests.get(p.event.event_id)
            if known is None:
                digests[p.event.event_id] = p.digest
                fresh.append(p)
            elif known == p.digest:
                dupes.append(p)
            else:
                conflicting.append((p, ServiceCode.CONFLICTING_EVENT_ID))
        fresh = self._within_limits(current, fresh, conflicting)
        upcoming = current.checkpoint.trajectory.next_review
        reviewed = current.checkpoint.at
        policy_change = timelines.next_change_after(reviewed) if reviewed else None
        if (
            not fresh
            and (upcoming is None or upcoming > now)
            and (policy_change is None or policy_change > now)
        ):
            return UserOutcome(None, fresh, dupes, conflicting, next_review=upcoming)
        horizon = self.limits.horizon
        # The ledger: the new entries appended, or (events left the window) rewritten.
        entries = [p.entry or encode_entry(p.event, p.digest) for p in fresh]
        # Read from those entries by the compiled machine, as it reads the stored ones.
        packed = compiled.pack_ledger(b"".join(entries)) if ledger is not None and entries else None
        checkpoint = update(
            current.checkpoint,
            [p.event for p in fresh],
            ledger,
            timelines,
            now,
            horizon,
            fresh_packed=packed[0] if packed is not None else None,
        )
        if not fresh and checkpoint == current.checkpoint:
            return UserOutcome(None, fresh, dupes, conflicting, next_review=upcoming)
        rewrite = False
        size = current.ledger_size + len(fresh)
        latest = max(
            [p.event.occurred_at for p in fresh]
            + ([current.latest_event_at] if current.latest_event_at else []),
            default=None,
        )
        kept = ledger.kept_after(now - horizon) if ledger is not None else None
        if kept is not None:
            # Events left the window: the ledger is rewritten with the rest, as stored.
            rewrite = True
            entries = [kept[0], *entries]
            size = kept[1] + len(fresh)
        # Late: before the instant the stored status was last announced as of.
        announced = current.written_at or current.checkpoint.at
        restated = announced is not None and any(p.event.occurred_at <= announced for p in fresh)
        status_event = None
        before = current.line
        score: int | None = None
        if checkpoint.score is not None and _announced(before, checkpoint.trajectory.line):
            # No change to announce: the score the status machine saw is all the metric needs
            # (standing would repeat that last review, line and score alike).
            score = checkpoint.score
        elif (stated := announced_standing(checkpoint, timelines)) is not None:
            score = stated.score
            if not _announced(before, stated.line):
                self._status_changes(stated.status).inc()
                status_event = status_change_event(
                    before,
                    stated,
                    timelines.at(stated.at),
                    self.settings.reason_language,
                    restated=restated,
                )
        write = UserWrite(
            user_id=user,
            expected_version=current.version,
            checkpoint=checkpoint,
            at_capacity=self._at_capacity(size, checkpoint),
            entries=entries,
            rewrite=rewrite,
            latest_event_at=latest,
            ledger_size=size,
            status_event=status_event,
            written_at=now,
        )
        self._observe_intervals(current.checkpoint, checkpoint)
        past_changed = restated and _past_restated(current.checkpoint, checkpoint, announced)
        return UserOutcome(
            write,
            fresh,
            dupes,
            conflicting,
            restated=past_changed,
            next_review=checkpoint.trajectory.next_review,
            score=score,
        )

    def _at_capacity(self, ledger_size: int, checkpoint: Checkpoint) -> str:
        """Which of the user's kept histories is full (``events``, ``loans``), comma
        separated; empty when none: a full one means its requests are reviewed by a person."""
        full = []
        if ledger_size >= self.settings.max_events_per_user:
            full.append("events")
        if len(checkpoint.loan_ids()) >= self.settings.max_open_loans_per_user:
            full.append("loans")
        return ",".join(full)

    def _observe_intervals(self, old: Checkpoint, new: Checkpoint) -> None:
        """Observe the event time between each new status change and the one before it."""
        intervals = change_intervals(old.trajectory, new.trajectory)
        if intervals:
            observe_all(self.metrics.line_status_change_interval, intervals)


def _announced(before: LineStatus | None, line: LineStatus | None) -> bool:
    """Whether ``line`` is the status already announced (``before``): same status, same since."""
    return (
        before is not None
        and line is not None
        and (before.status, before.since) == (line.status, line.since)
    )


def _past_restated(old: Checkpoint, new: Checkpoint, at: datetime | None) -> bool:
    """Whether the status history up to ``at`` (when it was last announced) differs."""
    if at is None:
        return False
    return old.trajectory.records_through(at) != new.trajectory.records_through(at)


@dataclass
class UserOutcome:
    """What folding one user's batch gives: the write, and each record's fate."""

    write: UserWrite | None
    fresh: list[Pending]
    duplicates: list[Pending]
    conflicting: list[tuple[Pending, ServiceCode]]
    restated: bool = False
    #: The user's next review: the written checkpoint's, else the stored one's (the schedule
    #: is kept right when nothing is written too).
    next_review: datetime | None = None
    #: The score of the user's last review when written (for the score histogram).
    score: int | None = None


@dataclass
class _Part:
    """One part of a batch's users, folded: the writes to save, each user's outcome and the
    status events to publish once written (new ones, and any a crash left in the outbox)."""

    users: list[str]
    writes: list[UserWrite] = field(default_factory=list)
    outcomes: dict[str, UserOutcome] = field(default_factory=dict)
    announcements: dict[str, bytes] = field(default_factory=dict)


class _Unread(NamedTuple):
    """A part of a batch's users to read: users decoded already, and the records of users
    to decode (each user's, grouped by key) as the part is read."""

    users: list[str]
    records: list[list[InboundRecord]]


@dataclass
class _Tally:
    """What a batch's parts add up to: the report, the records that could not be folded and
    those refused (dead-lettered at the batch's end), the dead letters sent, each unsettled
    user's event partitions, and the users folded so far."""

    report: BatchReport
    failed: list[Pending] = field(default_factory=list)
    conflicting: list[tuple[Pending, ServiceCode]] = field(default_factory=list)
    deliveries: list[Awaitable[Any]] = field(default_factory=list)
    partitions: dict[str, frozenset[int]] = field(default_factory=dict)
    #: One frozenset for each set of partitions, shared by the users that have it.
    held: dict[frozenset[int], frozenset[int]] = field(default_factory=dict)
    #: Users folded so far, over every part and round (when the fold yields).
    visited: int = 0
    #: Whether a rebalance may end it after a part (a batch of records, not a review).
    interruptible: bool = False


def _chunks(items: list[_T]) -> list[list[_T]]:
    """``items`` in consecutive parts of :data:`USERS_PER_PART`."""
    return [items[i : i + USERS_PER_PART] for i in range(0, len(items), USERS_PER_PART)]


async def cancelled(futures: Sequence[asyncio.Future[Any]]) -> None:
    """Cancel ``futures`` and wait until every one has ended (their errors are let go: the
    caller raises its own)."""
    for future in futures:
        future.cancel()
    await asyncio.gather(*futures, return_exceptions=True)

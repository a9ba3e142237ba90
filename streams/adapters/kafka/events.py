"""Topics read in batches with aiokafka and committed only after they are handled: the
event topics (:class:`EventConsumer`) and, with the same machinery, the loan requests
(:mod:`streams.adapters.kafka.requests`).

Faust delivers records one by one through its stream machinery (an event object, callbacks
and an ack per record, on a second thread): on a busy worker that cost more than folding the
events, and it put a thread and a queue between a loan request and its answer. Neither
needs it — events are folded in batches and made idempotent in Redis, requests are answered
idempotently — so they are read here with ``getmany`` and handed over a batch at a time.

At least once, never past an unhandled record:

* offsets are committed (to the consumer's group: :attr:`Settings.events_group` for events)
  only after the handler returned for the whole batch — applied, duplicate or dead-lettered
  — and, where the handler says so, once what it published is acknowledged
  (:class:`~streams.adapters.kafka.commits.OrderedCommits`);
* a batch's commit runs while the next batch is fetched and handled (under live load it was
  a third of a small batch's time), and commits land in order: a crash meanwhile only
  redelivers handled records (recognised duplicates);
* a rebalance waits for the batch in flight and its commit (the revocation callback takes
  the same lock), so a partition changes hands only at a batch boundary, committed. A
  handler that can stop early (the event fold, after a part of a batch's users) is asked to
  (:meth:`BatchConsumer.revoking`) and raises :class:`~streams.errors.BatchInterrupted`: the
  batch is not committed and its partitions are read again from its first records;
* records of partitions revoked while they were being fetched are left to their new owner;
* partitions are assigned in ranges per topic, so the same partition of every event topic —
  the same users — goes to the same worker.

Batches are sized by time (:class:`BatchSizer`): under a backlog a batch takes as many records
as are handled in about ``batch_target_seconds`` (``batch_backfill_target_seconds`` while it
is deep), read in as many fetch rounds as that needs; otherwise it takes what has arrived
(:func:`is_backlog`: it never waits for arrivals).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from operator import attrgetter
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import OffsetAndMetadata

from streams.adapters.kafka.batch_sizing import BatchSizer, is_backlog, left_behind, left_past
from streams.adapters.kafka.client import client_options, start_client
from streams.adapters.kafka.commits import OrderedCommits
from streams.adapters.kafka.sink import inbound_from_aiokafka
from streams.errors import BatchInterrupted
from streams.ports import InboundRecord
from streams.settings import Settings

log = logging.getLogger(__name__)

BatchHandler = Callable[[list[InboundRecord]], Awaitable[Any]]
#: Called between batches with the partition numbers this consumer owns.
TickHandler = Callable[[set[int]], Awaitable[Any]]


#: How every creditline consumer group assigns partitions: in ranges per topic, so partition
#: p of every event topic goes to the same worker.
GROUP_ASSIGNOR = RangePartitionAssignor


def consumer_options(
    settings: Settings, group: str | None = None, label: str = "events"
) -> dict[str, Any]:
    """aiokafka consumer options of a batch consumer (manual commits, range assignment):
    the events group unless another ``group`` is named."""
    session_ms = int(settings.session_timeout_seconds * 1000)
    options = client_options(settings) | {
        "group_id": group or settings.events_group,
        "client_id": f"{settings.app_id}-{label}",
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "partition_assignment_strategy": (GROUP_ASSIGNOR,),
        "session_timeout_ms": session_ms,
        "heartbeat_interval_ms": min(3000, session_ms // 3),
        "rebalance_timeout_ms": max(20_000, session_ms * 2),
        "max_poll_records": settings.batch_max_records,
        # Small fetches: while the fold lags, aiokafka keeps a fetched response for every
        # partition until it is read, and a folding process's memory followed those buffers
        # (they were up to max message + 1 MiB each). A large batch reads several rounds
        # (_fetch). A record larger than these limits still arrives (KIP-74).
        "max_partition_fetch_bytes": settings.fetch_partition_bytes,
        "fetch_max_bytes": settings.fetch_partition_bytes * 32,
    }
    if label == "events":  # only the fold may wait for fuller fetches, never a loan request
        options["fetch_min_bytes"] = settings.events_fetch_min_bytes
        options["fetch_max_wait_ms"] = max(1, round(settings.events_fetch_wait_seconds * 1000))
    return options


def held_fetch_ms(settings: Settings, label: str = "events") -> int:
    """How long the broker may hold a fetch that has records (0: any byte answers it)."""
    options = consumer_options(settings, label=label)
    return int(options["fetch_max_wait_ms"]) if options.get("fetch_min_bytes", 1) > 1 else 0


def next_offsets(fetched: Mapping[TopicPartition, Sequence[Any]]) -> dict[TopicPartition, int]:
    """Per partition, the offset after its last fetched record: what to commit once all are
    done (read per partition, not per record: a backlog's batch holds tens of thousands)."""
    return {tp: max(map(_OFFSET, messages)) + 1 for tp, messages in fetched.items() if messages}


_OFFSET = attrgetter("offset")


#: A fetch that returns within this many seconds found records already buffered: they were
#: fetched while the last batch was handled (see :meth:`BatchConsumer._fetch`).
BUFFERED_SECONDS = 0.001
#: How long the round after buffered records waits for what the broker holds (a fetch round
#: trip on a busy machine; 2 ms was too short to bring anything back on a 2-core machine).
CATCH_UP_WAIT_MS = 10
#: How long each further round of a backlog's batch may wait for the broker. The records are
#: on the broker, so the wait ends when they come; a round that took longer than the live
#: wait (``CREDITLINE_BATCH_MAX_WAIT_SECONDS``, 0.05 s) used to close the batch, and on a busy
#: 2-core machine batches stopped near 29,000 records where 100,000 were allowed.
BACKLOG_ROUND_WAIT_MS = 500


class _WaitForBatch(ConsumerRebalanceListener):  # type: ignore[misc]
    """Partitions are revoked only between batches: the callback waits for the lock, then for
    the commits of the batches handled. While it waits, :attr:`revoking` tells a handler that
    can end its batch early (:class:`~streams.errors.BatchInterrupted`) to do so."""

    def __init__(
        self, label: str, lock: asyncio.Lock, committed: Callable[[], Awaitable[None]]
    ) -> None:
        self.label = label
        self.lock = lock
        self.committed = committed
        self.revoking = False

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.revoking = True
        try:
            async with self.lock:
                self.revoking = False
                await self._after_batch(revoked)
        finally:
            self.revoking = False

    async def _after_batch(self, revoked: list[TopicPartition]) -> None:
        """The batch in flight is over: its commit, and the ones before it, land first."""
        try:
            await self.committed()
        except KafkaError as exc:  # the next owner re-reads it: duplicates, recognised
            log.warning("%s: the last commit before a rebalance failed: %s", self.label, exc)
        if revoked:
            log.info(
                "%s: %d partitions revoked after the batch in flight", self.label, len(revoked)
            )

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("%s: %d partitions assigned", self.label, len(assigned))


class BatchConsumer:
    """Reads ``topics`` in batches as consumer group ``group`` and commits each batch once it
    is handled (and settled, when :meth:`_handle` says by what)."""

    #: Names the consumer in logs and its Kafka client id.
    label = "batches"
    #: Handled batches whose commit may still be under way while the next are handled.
    commits_in_flight = 1
    #: The least time between two commits (0: each batch's as soon as it is settled).
    commit_interval_seconds = 0.0
    #: Whether a batch that starts with buffered records first fetches once more
    #: (:meth:`_fetch`): fresher batches, for up to :data:`CATCH_UP_WAIT_MS` more wait.
    catches_up = False
    #: Most records a batch may take, below ``CREDITLINE_BATCH_MAX_RECORDS`` (None: that).
    most_records: int | None = None
    #: Whether a deep backlog takes the longer backfill batches (``BatchSizer``).
    backfills = True

    def __init__(self, settings: Settings, topics: Sequence[str], group: str) -> None:
        self.settings = settings
        self.topics = tuple(topics)
        self.group = group
        ceiling = min(settings.batch_max_records, self.most_records or settings.batch_max_records)
        backfill = settings.batch_backfill_target_seconds if self.backfills else None
        self.sizer = BatchSizer(
            ceiling, settings.batch_target_seconds, backfill_target_seconds=backfill
        )
        #: How many records the logs held past the last batch when it was fetched.
        self._behind = 0
        self._lock = asyncio.Lock()
        self._listener: _WaitForBatch | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._commits: OrderedCommits | None = None
        # The catch-up round outwaits a fetch the broker may hold to fill it.
        self.catch_up_wait_ms = CATCH_UP_WAIT_MS + held_fetch_ms(settings, self.label)

    async def _handle(self, records: list[InboundRecord]) -> Awaitable[Any] | None:
        """Handle a batch (it may empty ``records``: they are its to let go); what settles
        it, if handling it is not enough."""
        raise NotImplementedError

    async def start(self) -> None:
        """Connect and subscribe (the group is joined on the first fetch)."""
        consumer = AIOKafkaConsumer(**consumer_options(self.settings, self.group, self.label))
        await start_client(consumer, self.settings)
        self._commits = OrderedCommits(
            lambda offsets: self._commit(consumer, offsets),
            self.commits_in_flight,
            self.commit_interval_seconds,
        )
        listener = self._listener = _WaitForBatch(self.label, self._lock, self._committed)
        consumer.subscribe(self.topics, listener=listener)
        self._consumer = consumer

    def revoking(self) -> bool:
        """Whether a rebalance waits to take this consumer's partitions: a handler may end
        the batch in flight early by raising :class:`~streams.errors.BatchInterrupted`."""
        return self._listener is not None and self._listener.revoking

    async def stop(self) -> None:
        """Leave the group (uncommitted records go to the next owner) and disconnect."""
        if self._consumer is not None:
            with contextlib.suppress(Exception):  # run() reported it; redelivered if lost
                await self._committed()
            if self._commits is not None:
                self._commits.cancel()
            consumer, self._consumer = self._consumer, None
            await consumer.stop()

    async def run(
        self,
        should_stop: Callable[[], bool],
        on_tick: TickHandler | None = None,
        tick_seconds: float = 5.0,
    ) -> None:
        """Fetch, apply and commit batches until ``should_stop``; the handler's errors
        propagate with their batch uncommitted. Every ``tick_seconds``, between batches,
        ``on_tick`` gets the partitions owned (under the batch lock: a rebalance waits)."""
        assert self._consumer is not None, "start() first"
        consumer = self._consumer
        wait_ms = max(1, int(self.settings.batch_max_wait_seconds * 1000))
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        try:
            while not should_stop():
                assert self._commits is not None
                await self._commits.check()  # output not acknowledged: stop, even when idle
                fetched = await self._fetch(consumer, wait_ms)
                if fetched:
                    async with self._lock:
                        started = loop.time()
                        applied = await self._apply(consumer, fetched)
                        self.sizer.observe(applied, loop.time() - started, self._behind)
                if on_tick is not None and loop.time() >= next_tick:
                    next_tick = loop.time() + tick_seconds
                    async with self._lock:
                        owned = {tp.partition for tp in consumer.assignment()}
                        if owned:
                            await on_tick(owned)
        except BaseException:
            # The batches applied before the failure keep their commit; the failed one has
            # none (the error that stopped the run is the one reported).
            with contextlib.suppress(Exception):
                await self._committed()
            raise
        await self._committed()

    async def _committed(self) -> None:
        """Wait for the handled batches' commits (raising the error that stopped them)."""
        if self._commits is not None:
            await self._commits.drain()

    async def _fetch(
        self, consumer: AIOKafkaConsumer, wait_ms: int
    ) -> dict[TopicPartition, list[Any]]:
        """The next batch's records: what one fetch round returns and, while the rounds read
        a backlog (:func:`is_backlog`), the next rounds' too, up to the sizer's limit. One
        round returns at most ``fetch_partition_bytes`` per partition. A consumer that
        :attr:`catches_up` asks once more (at most ``CATCH_UP_WAIT_MS``) when the first
        round only handed over records buffered during the last batch."""
        limit = self.sizer.limit
        asked = time.monotonic()
        fetched: dict[TopicPartition, list[Any]] = await consumer.getmany(
            timeout_ms=wait_ms, max_records=limit
        )
        count = sum(len(messages) for messages in fetched.values())
        last, returned = fetched, count
        if (
            self.catches_up
            and 0 < count < limit
            and time.monotonic() - asked < BUFFERED_SECONDS
            and not is_backlog(left_behind(consumer, last), returned)
        ):
            # Buffered records came from the first fetch response during the last batch.
            # aiokafka then fetches nothing more from that broker for 100 ms (its prefetch
            # backoff), so what arrived since waits on the broker: without this round it
            # would wait for the next batch too (an event's age at a 30 ms batch's end:
            # p50 79 -> 54 ms at 1,800 events/s, docs/sizing.md).
            last = await consumer.getmany(
                timeout_ms=self.catch_up_wait_ms, max_records=limit - count
            )
            returned = self._merge(fetched, last)
            count += returned
        while count < limit and is_backlog(left_behind(consumer, last), returned):
            last = await consumer.getmany(
                timeout_ms=max(wait_ms, BACKLOG_ROUND_WAIT_MS), max_records=limit - count
            )
            returned = self._merge(fetched, last)
            count += returned
        # Every partition owned and fetched once (a watermark known), not only the batch's:
        # it may have taken all from one of many. A position being reset is waited for; a
        # partition revoked meanwhile is no longer this consumer's backlog.
        positions: dict[TopicPartition, int] = {}
        for tp in consumer.assignment():
            if consumer.highwater(tp) is not None:
                with contextlib.suppress(IllegalStateError):
                    positions[tp] = await consumer.position(tp)
        self._behind = left_past(consumer, positions)
        return fetched

    @staticmethod
    def _merge(
        fetched: dict[TopicPartition, list[Any]], more: dict[TopicPartition, list[Any]]
    ) -> int:
        """Append a later round's records to ``fetched`` (in offset order); how many."""
        for tp, messages in more.items():
            fetched.setdefault(tp, []).extend(messages)
        return sum(len(messages) for messages in more.values())

    async def _apply(
        self, consumer: AIOKafkaConsumer, fetched: dict[TopicPartition, list[Any]]
    ) -> int:
        """Hand the records of partitions still owned to the handler, then commit them;
        how many there were. Empties ``fetched``, and the handler may empty the list it is
        given: a backlog's batch of 50,000 records is then not held whole until its end."""
        owned = consumer.assignment()
        # Revoked while fetched: the new owner reads them again.
        kept = {tp: messages for tp, messages in fetched.items() if tp in owned}
        fetched.clear()
        offsets = next_offsets(kept)
        firsts = {tp: messages[0].offset for tp, messages in kept.items() if messages}
        records: list[InboundRecord] = []
        for tp in list(kept):
            # Each partition's client records go once converted, not with the batch.
            records.extend(map(inbound_from_aiokafka, kept.pop(tp)))
        count = len(records)
        if not count:
            return 0
        try:
            settled = await self._handle(records)
        except BatchInterrupted as interrupted:
            # Not committed, and read again from its first records: by this consumer if the
            # rebalance leaves it the partitions (a new assignment starts from the committed
            # offsets too), else by their next owner. Never skipped: the next fetch would
            # otherwise go on after it.
            for tp, offset in firsts.items():
                with contextlib.suppress(IllegalStateError):  # no longer assigned
                    consumer.seek(tp, offset)
            log.info("%s: %s; the batch is read again", self.label, interrupted)
            return 0
        assert self._commits is not None
        await self._commits.add(offsets, settled)
        return count

    async def _commit(self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        """Commit applied offsets; losing the partitions meanwhile is harmless (the next
        owner re-reads those records and recognises them as duplicates)."""
        owned = consumer.assignment()
        mine = {tp: OffsetAndMetadata(o, "") for tp, o in offsets.items() if tp in owned}
        if not mine:
            return
        try:
            await consumer.commit(mine)
        except (CommitFailedError, IllegalStateError) as exc:
            log.info("%s: commit skipped after a rebalance (%s)", self.label, type(exc).__name__)
        except KafkaError as exc:
            if not exc.retriable:
                raise
            log.warning(
                "%s: commit failed (%s); the next batch commits", self.label, type(exc).__name__
            )


class EventConsumer(BatchConsumer):
    """Reads the event topics of ``settings`` (group :attr:`Settings.events_group`) and hands
    batches to ``handler``: a batch is committed once the handler returned."""

    label = "events"
    catches_up = True

    def __init__(self, settings: Settings, topics: Sequence[str], handler: BatchHandler) -> None:
        super().__init__(settings, topics, settings.events_group)
        self.handler = handler

    async def _handle(self, records: list[InboundRecord]) -> None:
        await self.handler(records)  # it may take the records (emptying the list)

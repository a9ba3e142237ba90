"""One tail of the decision topic per worker process, handing each decision to whoever waits
for it (the HTTP decision API, :mod:`streams.service.http_decisions`).

A single ``AIOKafkaConsumer`` without a consumer group is assigned every partition of the
decision topic. A request registered with :meth:`DecisionTail.expect` before it is published
cannot miss its decision, however fast it comes: ``expect`` returns only once the tail reads
from positions no later than the topic's end at that moment, and the decision is appended
after it. Waiting costs a future, never a consumer.

Nobody waiting, nothing read: after :data:`IDLE_PAUSE_SECONDS` without a waiter the tail
pauses its partitions, and the next ``expect`` moves them to the topic's end (one offset
lookup) before it returns. A worker whose requests all come by Kafka never fetches its own
decisions back: about a tenth of the decider's time at 100 requests/s (docs/sizing.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.adapters.kafka.client import client_options, start_client
from streams.adapters.kafka.read import topic_partitions
from streams.settings import Settings

log = logging.getLogger(__name__)

#: How long one fetch waits for new decisions before the loop looks at ``should_stop``.
FETCH_WAIT_MS = 500
#: Pause after a failed fetch (the client reconnects by itself meanwhile).
FETCH_RETRY_SECONDS = 0.5
#: Failed fetches are logged at most this often.
REPORT_INTERVAL_SECONDS = 60.0
#: The tail stops fetching once nobody has waited for this long (a POST after that pays one
#: offset lookup, a few milliseconds, to resume it).
IDLE_PAUSE_SECONDS = 5.0


def decided_request(value: bytes | None) -> str | None:
    """The ``request_id`` a decision answers, or None for a value that is not a decision."""
    if not value:
        return None
    try:
        document = json.loads(value)
    except (ValueError, RecursionError):  # anything on the topic: never stop the tail
        return None
    request_id = document.get("request_id") if isinstance(document, dict) else None
    return request_id if isinstance(request_id, str) else None


class Waiters:
    """Futures waiting for decisions, by user and request id (a request id is unique per user
    only: decisions are remembered per user).

    Only the values of records whose key is a user with someone waiting are parsed.
    """

    def __init__(self) -> None:
        self._futures: dict[tuple[bytes, str], list[asyncio.Future[bytes]]] = {}
        self._users: Counter[bytes] = Counter()

    def __len__(self) -> int:
        return sum(self._users.values())

    def expect(self, user_id: str, request_id: str) -> asyncio.Future[bytes]:
        """A future for the next decision of this request."""
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        user = user_id.encode()
        self._futures.setdefault((user, request_id), []).append(future)
        self._users[user] += 1
        return future

    def forget(self, user_id: str, request_id: str, future: asyncio.Future[bytes]) -> None:
        """Stop waiting with ``future``; a decision that came meanwhile is left unread."""
        user = user_id.encode()
        waiting = self._futures.get((user, request_id))
        if waiting is None or future not in waiting:
            return
        waiting.remove(future)
        if not waiting:
            del self._futures[(user, request_id)]
        self._users[user] -= 1
        if self._users[user] <= 0:
            del self._users[user]
        if not future.done():
            future.cancel()

    def deliver(self, key: bytes | None, value: bytes | None) -> int:
        """Hand a decision record to everyone waiting for it; how many were waiting."""
        if key is None or key not in self._users:
            return 0
        request_id = decided_request(value)
        if request_id is None:
            return 0
        waiting = self._futures.pop((key, request_id), [])
        if not waiting:
            return 0
        self._users[key] -= len(waiting)
        if self._users[key] <= 0:
            del self._users[key]
        assert value is not None
        for future in waiting:
            if not future.done():
                future.set_result(value)
        return len(waiting)


class DecisionTail:
    """A :class:`~streams.ports.DecisionFeed` over the decision topic."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.settings = settings
        self.topic = topic
        self.waiters = Waiters()
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions: list[TopicPartition] = []
        self._positioned = False
        #: The move to the end under way (every ``expect`` meanwhile awaits the same one).
        self._resuming: asyncio.Future[None] | None = None
        #: Set while the tail follows — its partitions resumed, their positions no later than
        #: the end, so a decision published from now on will be read — and the paused loop
        #: wakes for it.
        self._following = asyncio.Event()
        #: When someone last waited (monotonic): the tail pauses after an idle while.
        self._last_waited = 0.0
        #: The last fetch failed (refused, say): requests would wait in vain meanwhile.
        self._failing = False
        self._reported = 0.0

    def positioned(self) -> bool:
        """True once every partition's position is resolved at start, and while fetching
        works."""
        return self._positioned and not self._failing

    def following(self) -> bool:
        """Whether the tail is reading now (False while paused for want of waiters)."""
        return self._following.is_set()

    async def expect(self, user_id: str, request_id: str) -> asyncio.Future[bytes]:
        """See :meth:`Waiters.expect`; returns once the tail reads from positions no later
        than the topic's end now (a paused tail is moved there first). Raises when it
        cannot be moved (the broker away): nothing is registered then."""
        future = self.waiters.expect(user_id, request_id)
        self._last_waited = time.monotonic()
        if self._following.is_set():
            return future
        try:
            if self._resuming is None:
                self._resuming = asyncio.ensure_future(self._follow())
            # Shielded: one caller giving up does not stop the move the others wait for.
            await asyncio.shield(self._resuming)
        except BaseException:
            self.waiters.forget(user_id, request_id, future)
            raise
        return future

    def forget(self, user_id: str, request_id: str, future: asyncio.Future[bytes]) -> None:
        """See :meth:`Waiters.forget`."""
        self.waiters.forget(user_id, request_id, future)

    async def start(self) -> None:
        """Connect, assign every partition of the topic and resolve each position at its end;
        the tail then waits, paused, for its first waiter."""
        consumer = AIOKafkaConsumer(
            **client_options(self.settings),
            enable_auto_commit=False,
            auto_offset_reset="latest",
            max_partition_fetch_bytes=self.settings.max_message_bytes + 1024 * 1024,
            fetch_max_wait_ms=FETCH_WAIT_MS,
        )
        await start_client(consumer, self.settings)
        self._consumer = consumer
        partitions = await topic_partitions(consumer, [self.topic])
        if not partitions:
            raise RuntimeError(f"the decision topic {self.topic} has no partitions")
        consumer.assign(partitions)
        self._partitions = sorted(partitions)
        await self._to_end()
        self._pause()
        self._positioned = True

    async def _to_end(self) -> None:
        """Move every partition's position to the topic's end now, resolved (not at the next
        fetch, which may come after a decision is appended)."""
        consumer = self._consumer
        assert consumer is not None
        await consumer.seek_to_end(*self._partitions)
        for partition in self._partitions:
            await consumer.position(partition)

    async def _follow(self) -> None:
        """Resume the paused partitions at the topic's end. Nobody waited when they were
        paused, and whoever waits now has not published yet: skipping to the end loses
        nothing."""
        consumer = self._consumer
        try:
            if consumer is None:
                raise RuntimeError("the decision topic's tail is not started")
            consumer.resume(*self._partitions)
            await self._to_end()
            self._following.set()
        except BaseException:
            if consumer is not None:
                consumer.pause(*self._partitions)
            raise
        finally:
            self._resuming = None

    def _pause(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        consumer.pause(*self._partitions)
        self._following.clear()

    def _idle(self) -> bool:
        """Nobody waits, and nobody has for :data:`IDLE_PAUSE_SECONDS`."""
        if len(self.waiters):
            self._last_waited = time.monotonic()
            return False
        return time.monotonic() - self._last_waited >= IDLE_PAUSE_SECONDS

    async def run(self, should_stop: Callable[[], bool]) -> None:
        """Hand every decision published from now on to its waiters, until ``should_stop``;
        read nothing while nobody waits."""
        consumer = self._consumer
        assert consumer is not None, "start the tail first"
        while not should_stop():
            if not self._following.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(FETCH_WAIT_MS / 1000):
                        await self._following.wait()
                continue
            if self._idle() and self._resuming is None:
                self._pause()
                continue
            try:
                fetched = await consumer.getmany(timeout_ms=FETCH_WAIT_MS)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # refused, or a broker hiccup: tried again
                self._fetch_failed(exc)
                await asyncio.sleep(FETCH_RETRY_SECONDS)
                continue
            if self._failing:
                log.info("reading the decision topic works again")
                self._failing = False
            for records in fetched.values():
                for record in records:
                    self.waiters.deliver(record.key, record.value)

    def _fetch_failed(self, exc: Exception) -> None:
        """Stop taking requests until a fetch works again; say so at most once a minute."""
        self._failing = True
        now = time.monotonic()
        if now - self._reported >= REPORT_INTERVAL_SECONDS:
            self._reported = now
            log.warning(
                "reading the decision topic %s failed (%s): the decision API answers 503 "
                "until it works",
                self.topic,
                type(exc).__name__,
            )

    async def stop(self) -> None:
        """Stop reading; nobody is handed a decision any more."""
        self._positioned = False
        self._following.clear()
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

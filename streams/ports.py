"""What the services need from the outside world, as plain records and Protocols.

The service layer (:mod:`streams.service`) is written against these, never against a Kafka
or Redis client: the adapters (:mod:`streams.adapters`) implement them, and the unit tests
fake them (``tests/unit/fakes.py``). Errors cross this boundary as :mod:`streams.errors`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from streams.core.ledger import StoredLedger
from streams.core.scoring import LineStatus
from streams.core.state import UserState
from streams.core.timeline import Checkpoint


class InboundRecord(NamedTuple):
    """One consumed Kafka record, independent of the client library that read it.

    A named tuple, not a frozen dataclass: one is made per consumed record, and a frozen
    dataclass takes ~1.5 µs to make against ~0.6 (a backfill's every event pays it)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float | None = None  # seconds since the epoch
    #: Names with bytes that are not UTF-8 hold them as lone surrogates (tolerant_records).
    headers: Sequence[tuple[str, bytes]] = ()
    #: The timestamp is the broker's append time (trusted), not the producer's create time.
    log_append_time: bool = False


class RecordSink(Protocol):
    """Something that publishes records; ``send`` returns when the record is queued and the
    awaitable it returns completes when the broker has acknowledged it."""

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> Awaitable[Any]: ...


class StoredUser(NamedTuple):
    """What a batch needs to know about one user before folding (a named tuple, like
    :class:`UserWrite`: one is made per user a batch visits, ~2.5 times faster than a frozen
    dataclass of these fields)."""

    version: int
    checkpoint: Checkpoint
    #: Fingerprints of the candidate events that may be applied already: every candidate
    #: whose id occurs in the stored ledger is among them, maybe others too (the ledger, once
    #: read, decides). One not among them is not in the ledger.
    already_applied: frozenset[int]
    latest_event_at: datetime | None = None
    ledger_size: int = 0
    pending_status_event: bytes | None = None
    #: Wall-clock time of the last write: the stored status was announced as of then.
    written_at: datetime | None = None
    #: Which kept history is full (``events``, ``loans``, comma separated), else empty.
    at_capacity: str = ""

    @property
    def state(self) -> UserState | None:
        """The fold at the last review."""
        return self.checkpoint.state

    @property
    def line(self) -> LineStatus | None:
        """The status after the last review."""
        return self.checkpoint.trajectory.line


class UserWrite(NamedTuple):
    """A new checkpoint for one user, valid only if the stored version is still
    ``expected_version``; the ledger gets ``entries`` (appended, or instead of the stored
    ones with ``rewrite``): it is also what deduplication reads. The store keeps the
    status at the checkpoint readable beside it."""

    user_id: str
    expected_version: int
    checkpoint: Checkpoint
    entries: Sequence[bytes] = ()
    rewrite: bool = False
    latest_event_at: datetime | None = None
    ledger_size: int = 0
    status_event: bytes | None = None
    written_at: datetime | None = None
    #: Which kept history is full (``events``, ``loans``, comma separated), else empty.
    at_capacity: str = ""


@dataclass(frozen=True, slots=True)
class RememberedDecision:
    """A decision already published for a request id, and the digest of that request."""

    request_digest: str
    payload: bytes


class StateStore(Protocol):
    """Per-user state, the review schedule and the decision memory (the Redis store)."""

    async def ping(self) -> bool:
        """True when the store answers."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...

    async def load(self, candidates: Mapping[str, Sequence[str]]) -> dict[str, StoredUser]:
        """Each user's stored checkpoint and which candidate event ids may be applied (never
        one fewer than the stored ledger holds)."""
        ...

    async def load_ledgers(self, users: Sequence[str]) -> dict[str, StoredLedger]:
        """Each user's ledger."""
        ...

    async def save(self, writes: Sequence[UserWrite]) -> list[str]:
        """Apply every write atomically per user; the users whose version conflicted."""
        ...

    async def clear_status_events(self, published: Mapping[str, bytes]) -> None:
        """Empty the outbox of users whose status event was published (if unchanged)."""
        ...

    async def schedule(self, reviews: Mapping[tuple[int, str], datetime | None]) -> None:
        """Set each (partition, user)'s next review instant (None: unscheduled)."""
        ...

    async def due_reviews(
        self, partition: int, now: datetime, limit: int
    ) -> list[tuple[str, float]]:
        """Users of a partition whose review is due at ``now`` (user, due Unix seconds)."""
        ...

    async def schedule_policy(self, partition: int, effective: datetime) -> int:
        """Bring every review of a partition later than ``effective`` forward to it."""
        ...

    async def read_user(self, user_id: str) -> StoredUser:
        """A user's stored checkpoint, for a decision."""
        ...

    async def read_ledger(self, user_id: str) -> list[Any]:
        """A user's ledger events."""
        ...

    async def remember_decision(
        self, user_id: str, request_id: str, payload: bytes, ttl_seconds: int, digest: str = ""
    ) -> RememberedDecision | None:
        """Store a decision unless one exists; the earlier one if it does."""
        ...

    async def recall_decision(self, user_id: str, request_id: str) -> RememberedDecision | None:
        """The decision remembered for a request of a user, if any (it expires)."""
        ...


class TopicReader(Protocol):
    """Reads whole topics outside any consumer group (replay, explain)."""

    def read_to_end(
        self,
        topics: Iterable[str],
        batch_records: int = 2000,
        on_total: Callable[[int], None] | None = None,
    ) -> AsyncIterator[list[InboundRecord]]:
        """Every record of ``topics`` from the beginning to the end they had when reading
        began, in batches; ``on_total`` is told how many that is first."""
        ...


class DecisionFeed(Protocol):
    """The decisions published from now on, handed to whoever waits for one (the HTTP
    decision API): one tail of the decision topic per process, not one per request."""

    def positioned(self) -> bool:
        """True once the tail has started and while it reads: a decision published after
        :meth:`expect` returns cannot be missed."""
        ...

    async def expect(self, user_id: str, request_id: str) -> asyncio.Future[bytes]:
        """A future that gets the value of the next decision published for this request,
        once a decision published from now on cannot be missed (raises when that cannot be
        made so: the broker away)."""
        ...

    def forget(self, user_id: str, request_id: str, future: asyncio.Future[bytes]) -> None:
        """Stop waiting with ``future`` (done or not)."""
        ...

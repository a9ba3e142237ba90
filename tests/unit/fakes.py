"""In-memory stand-ins for the ports (:mod:`streams.ports`): the services' unit tests run in
milliseconds, with no Kafka or Redis, and can inject conflicts and outages at will."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schemas.models import InputEvent
from streams.adapters.redis.errors import StoreUnavailable
from streams.core.ledger import StoredLedger, decode_entry, fingerprint
from streams.core.timeline import START, Checkpoint
from streams.ports import InboundRecord, RememberedDecision, StoredUser, UserWrite


@dataclass
class _User:
    version: int = 0
    checkpoint: Checkpoint = START
    ledger: list[bytes] = field(default_factory=list)
    latest_event_at: datetime | None = None
    ledger_size: int = 0
    status_event: bytes | None = None
    written_at: datetime | None = None
    at_capacity: str = ""


class FakeStore:
    """A :class:`~streams.ports.StateStore` in memory, with the same versioned writes.

    ``unavailable`` makes the next calls of the named operations fail as an outage would;
    ``before_save`` runs just before a save is checked (a concurrent writer, say)."""

    def __init__(self) -> None:
        self.users: dict[str, _User] = {}
        self.schedule_: dict[tuple[int, str], datetime] = {}
        self.decisions: dict[tuple[str, str], tuple[str, bytes]] = {}
        self.unavailable: dict[str, int] = {}
        self.before_save: Callable[[], None] | None = None
        self.calls: list[str] = []

    def _call(self, operation: str) -> None:
        self.calls.append(operation)
        if self.unavailable.get(operation, 0) > 0:
            self.unavailable[operation] -= 1
            raise StoreUnavailable(f"fake outage in {operation}")

    def user(self, user_id: str) -> _User:
        return self.users.setdefault(user_id, _User())

    async def ping(self) -> bool:
        self._call("ping")
        return True

    async def close(self) -> None:
        return None

    async def load(self, candidates: Mapping[str, Sequence[str]]) -> dict[str, StoredUser]:
        self._call("load")
        return {
            u: StoredUser(
                version=self.user(u).version,
                checkpoint=self.user(u).checkpoint,
                already_applied=frozenset(
                    fingerprint(event_id) for event_id in ids if event_id in self._ids(u)
                ),
                latest_event_at=self.user(u).latest_event_at,
                ledger_size=self.user(u).ledger_size,
                pending_status_event=self.user(u).status_event,
                written_at=self.user(u).written_at,
            )
            for u, ids in candidates.items()
        }

    def _ids(self, user_id: str) -> set[str]:
        return {decode_entry(raw, user_id)[0].event_id for raw in self.user(user_id).ledger}

    async def load_ledgers(self, users: Sequence[str]) -> dict[str, StoredLedger]:
        self._call("load_ledger")
        return {u: StoredLedger(b"".join(self.user(u).ledger), u) for u in users}

    async def save(self, writes: Sequence[UserWrite]) -> list[str]:
        self._call("save")
        if self.before_save is not None:
            self.before_save()
        conflicts = []
        for w in writes:
            u = self.user(w.user_id)
            if u.version != w.expected_version:
                conflicts.append(w.user_id)
                continue
            u.version += 1
            u.checkpoint = w.checkpoint
            u.ledger = list(w.entries) if w.rewrite else [*u.ledger, *w.entries]
            u.latest_event_at = w.latest_event_at
            u.ledger_size = w.ledger_size
            u.written_at = w.written_at
            u.at_capacity = w.at_capacity
            if w.status_event is not None:
                u.status_event = w.status_event
        return conflicts

    async def clear_status_events(self, published: Mapping[str, bytes]) -> None:
        self._call("clear_outbox")
        for user, payload in published.items():
            if self.user(user).status_event == payload:
                self.user(user).status_event = None

    async def schedule(self, reviews: Mapping[tuple[int, str], datetime | None]) -> None:
        self._call("schedule")
        for key, due in reviews.items():
            if due is None:
                self.schedule_.pop(key, None)
            else:
                self.schedule_[key] = due

    async def due_reviews(
        self, partition: int, now: datetime, limit: int
    ) -> list[tuple[str, float]]:
        self._call("due_reviews")
        due = sorted(
            (at.timestamp(), user)
            for (p, user), at in self.schedule_.items()
            if p == partition and at <= now
        )
        return [(user, at) for at, user in due[:limit]]

    async def schedule_policy(self, partition: int, effective: datetime) -> int:
        self._call("schedule_policy")
        moved = 0
        for key, at in self.schedule_.items():
            if key[0] == partition and at > effective:
                self.schedule_[key] = effective
                moved += 1
        return moved

    async def read_user(self, user_id: str) -> StoredUser:
        self._call("read_state")
        u = self.user(user_id)
        return StoredUser(
            version=u.version,
            checkpoint=u.checkpoint,
            already_applied=frozenset(),
            latest_event_at=u.latest_event_at,
            ledger_size=u.ledger_size,
            at_capacity=u.at_capacity,
        )

    async def read_ledger(self, user_id: str) -> list[Any]:
        self._call("read_ledger")
        return [decode_entry(raw, user_id)[0] for raw in self.user(user_id).ledger]

    async def remember_decision(
        self, user_id: str, request_id: str, payload: bytes, ttl_seconds: int, digest: str = ""
    ) -> RememberedDecision | None:
        self._call("remember_decision")
        key = (user_id, request_id)
        if key in self.decisions:
            earlier_digest, earlier = self.decisions[key]
            return RememberedDecision(earlier_digest, earlier)
        self.decisions[key] = (digest, payload)
        return None

    async def recall_decision(self, user_id: str, request_id: str) -> RememberedDecision | None:
        self._call("recall_decision")
        remembered = self.decisions.get((user_id, request_id))
        return None if remembered is None else RememberedDecision(*remembered)


@dataclass
class Sent:
    """One record a fake sink was given."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


class FakeSink:
    """A :class:`~streams.ports.RecordSink` that keeps what it is given."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> Awaitable[Any]:
        self.sent.append(Sent(topic, key, value, list(headers)))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def to(self, topic: str) -> list[Sent]:
        """What was sent to ``topic``."""
        return [s for s in self.sent if s.topic == topic]


class FakeReader:
    """A :class:`~streams.ports.TopicReader` over records kept in memory, per topic."""

    def __init__(self, records: Iterable[InboundRecord]) -> None:
        self.records = list(records)

    async def read_to_end(
        self,
        topics: Iterable[str],
        batch_records: int = 2000,
        on_total: Callable[[int], None] | None = None,
    ) -> AsyncIterator[list[InboundRecord]]:
        wanted = set(topics)
        chosen = [r for r in self.records if r.topic in wanted]
        if on_total is not None:
            on_total(len(chosen))
        for i in range(0, len(chosen), batch_records):
            yield chosen[i : i + batch_records]


def record_of(topic: str, event: InputEvent, offset: int, partition: int = 0) -> InboundRecord:
    """An event as the record a consumer would hand over."""
    return InboundRecord(
        topic=topic,
        partition=partition,
        offset=offset,
        key=event.user_id.encode(),
        value=event.model_dump_json().encode(),
        timestamp=event.occurred_at.timestamp(),
    )


class FakeFeed:
    """A :class:`~streams.ports.DecisionFeed` in memory: :meth:`publish` hands a decision
    record to whoever waits for it, as the decision topic's tail would."""

    def __init__(self) -> None:
        self.ready = True
        #: What ``expect`` raises (the tail cannot be moved to the topic's end), if anything.
        self.refuse: Exception | None = None
        self.waiting: dict[tuple[str, str], list[asyncio.Future[bytes]]] = {}

    def positioned(self) -> bool:
        return self.ready

    async def expect(self, user_id: str, request_id: str) -> asyncio.Future[bytes]:
        if self.refuse is not None:
            raise self.refuse
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.waiting.setdefault((user_id, request_id), []).append(future)
        return future

    def forget(self, user_id: str, request_id: str, future: asyncio.Future[bytes]) -> None:
        waiting = self.waiting.get((user_id, request_id), [])
        if future in waiting:
            waiting.remove(future)
        if not waiting:
            self.waiting.pop((user_id, request_id), None)

    def publish(self, user_id: str, request_id: str, value: bytes) -> None:
        for future in self.waiting.pop((user_id, request_id), []):
            if not future.done():
                future.set_result(value)

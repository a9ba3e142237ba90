"""Helpers for tests that talk to the real Kafka and Redis."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from schemas.models import InputEvent, LineStatusChanged, LoanDecision, LoanRequest, Outcome
from streams.adapters.kafka.client import client_options, producer_options
from streams.adapters.kafka.read import read_to_end as kafka_read_to_end
from streams.adapters.kafka.read import topic_partitions
from streams.adapters.kafka.sink import inbound_from_aiokafka
from streams.adapters.redis.store import RedisStore
from streams.core.policy import load_default_policy
from streams.core.state import UserState, reference_fold
from streams.core.timeline import PolicyTimeline, advance, canonical, constant
from streams.devtools.simulation import Persona, persona_of, requests
from streams.metrics import Metrics
from streams.ports import InboundRecord
from streams.settings import Settings
from streams.topics import Topics
from tests.builders import asset_doc, encode, repayment_doc, spending_doc, ts


class StreamGate:
    """How far a test's stream may go: ``await gate.admit(n)`` returns once ``n`` records
    are let through, and the test lets more through with ``open_to``. Faults timed between
    stages of a stream then land mid-stream however fast or slow the machine is."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._opened = asyncio.Event()

    def open_to(self, limit: int) -> None:
        self.limit = limit
        self._opened.set()

    async def admit(self, records: int) -> None:
        while records > self.limit:
            self._opened.clear()
            await self._opened.wait()


async def produce(
    settings: Settings,
    records: Iterable[tuple[str, bytes | None, bytes | None]],
    *,
    partition_of: Callable[[int], int | None] | None = None,
) -> int:
    """Publish (topic, key, value) records and wait until all are acknowledged."""
    producer = AIOKafkaProducer(
        **producer_options(settings),
        linger_ms=5,
        max_request_size=settings.max_message_bytes,
    )
    await producer.start()
    futures = []
    try:
        for index, (topic, key, value) in enumerate(records):
            partition = partition_of(index) if partition_of else None
            futures.append(await producer.send(topic, value, key=key, partition=partition))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return len(futures)


async def _fetch_until_position(
    consumer: AIOKafkaConsumer,
    ends: dict[TopicPartition, int],
    records: list[ConsumerRecord[bytes, bytes]],
    deadline: float,
) -> bool:
    """Fetch into ``records`` until the consumer's position reaches ``ends`` on every
    partition; False if the deadline passes first."""
    while True:
        positions = {tp: await consumer.position(tp) for tp in ends}
        if all(positions[tp] >= end for tp, end in ends.items()):
            return True
        if time.monotonic() >= deadline:
            return False
        batches = await consumer.getmany(timeout_ms=250)
        for batch in batches.values():
            records.extend(batch)


def _reader(settings: Settings) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        **client_options(settings),
        enable_auto_commit=False,
        max_partition_fetch_bytes=settings.max_message_bytes + 1024 * 1024,
        fetch_max_bytes=settings.max_message_bytes * 4,
    )


async def read_topic(
    settings: Settings, topic: str, *, expect: int, timeout: float = 60.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read a topic from the beginning until ``expect`` records arrived (or time out)."""
    consumer = _reader(settings)
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        tps = await topic_partitions(consumer, [topic])
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout
        while len(records) < expect and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=250)
            for batch in batches.values():
                records.extend(batch)
        if len(records) >= expect:
            # Anything beyond what was expected must show up too: read on to the log end (on
            # a slow machine a fixed extra read may end before the log does), then a little
            # longer.
            ends = await consumer.end_offsets(tps)
            await _fetch_until_position(consumer, ends, records, time.monotonic() + timeout)
            batches = await consumer.getmany(timeout_ms=500)
            for batch in batches.values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records


async def read_to_end(
    settings: Settings, topic: str, *, timeout: float = 60.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of a topic, from the beginning to its end offsets as they were when
    called: what was acknowledged before, whatever the machine's speed (no time window)."""

    async def read() -> list[ConsumerRecord[bytes, bytes]]:
        return [r async for batch in kafka_read_to_end(settings, [topic]) for r in batch]

    try:
        return await asyncio.wait_for(read(), timeout)
    except TimeoutError:
        raise AssertionError(f"{topic} not read to its end offsets within {timeout:.0f}s") from None


def as_inbound(records: Sequence[ConsumerRecord[bytes, bytes]]) -> list[InboundRecord]:
    """Consumed aiokafka records as the processors' input."""
    return [inbound_from_aiokafka(r) for r in records]


def store_for(settings: Settings, metrics: Metrics | None = None) -> RedisStore:
    """A Redis store on the test's key prefix."""
    return RedisStore.connect(settings, metrics or Metrics())


async def redis_states(settings: Settings) -> dict[str, UserState]:
    """Every user's state stored under the test's key prefix."""
    store = store_for(settings)
    try:
        return {user: state async for user, state in store.scan_states()}
    finally:
        await store.close()


async def wait_for(
    condition: Callable[[], Awaitable[Any]],
    *,
    timeout: float = 60.0,
    interval: float = 0.25,
    message: str = "condition",
) -> Any:
    """Poll an async condition until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await condition()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {message} (last: {last!r})")


def headers_of(record: ConsumerRecord[bytes, bytes]) -> dict[str, str]:
    """A consumed record's headers as text."""
    return {k: bytes(v).decode() for k, v in (record.headers or ())}


async def committed_lag(settings: Settings, topics: Sequence[str], group: str | None = None) -> int:
    """Records of event ``topics`` beyond the committed offsets of ``group`` (by default the
    events group); 0 = all committed."""
    consumer = AIOKafkaConsumer(
        **client_options(settings),
        group_id=group or settings.events_group,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        tps = await topic_partitions(consumer, topics)
        ends = await consumer.end_offsets(tps)
        lag = 0
        for tp in tps:
            committed = await consumer.committed(tp)
            lag += ends[tp] - (committed or 0)
        return lag
    finally:
        await consumer.stop()


async def group_members(settings: Settings, group: str | None = None) -> tuple[str, int]:
    """A consumer group's state (``Stable``, ``PreparingRebalance``, …) and number of
    members; the events group unless ``group`` is given."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        [response] = await admin.describe_consumer_groups([group or settings.events_group])
    finally:
        await admin.close()
    return described_group(response)


def described_group(response: Any) -> tuple[str, int]:
    """State and member count of the one group a ``DescribeGroups`` response describes."""
    described = response.groups[0]
    return str(described[2]), len(described[5])


async def assert_redis_matches_reference(
    settings: Settings, events: Sequence[InputEvent], *, timeout: float = 60.0
) -> None:
    """Wait until Redis holds as many applied events as the reference fold of ``events``,
    then require every user's state, status history and last review to be exactly the
    reference ones (see :func:`assert_trajectories_match_reference`)."""
    expected = reference_fold(events)
    total = sum(s.events_applied for s in expected.values())

    async def all_applied() -> bool:
        states = await redis_states(settings)
        return sum(s.events_applied for s in states.values()) == total

    await wait_for(all_applied, timeout=timeout, message=f"{total} events applied")
    assert sorted(await redis_states(settings)) == sorted(expected)
    await assert_trajectories_match_reference(settings, events)


async def assert_trajectories_match_reference(
    settings: Settings,
    events: Sequence[InputEvent],
    timelines: PolicyTimeline | None = None,
) -> None:
    """Every user's stored status history, last review and fold are exactly the reference
    ones: the status machine run over all of the user's events at once, in canonical order,
    up to the stored last review instant."""
    timelines = timelines or constant(load_default_policy())
    horizon = timedelta(days=settings.event_horizon_days)
    by_user: dict[str, dict[str, InputEvent]] = defaultdict(dict)
    for event in events:
        by_user[event.user_id][event.event_id] = event
    store = store_for(settings)
    try:
        for user, unique in by_user.items():
            stored = await store.read_user(user)
            at = stored.checkpoint.at
            assert at is not None, f"{user} was never reviewed"
            expected = advance(canonical(list(unique.values())), timelines, at, horizon)
            assert stored.checkpoint.trajectory == expected.trajectory, user
            assert stored.checkpoint.state == expected.state, user
    finally:
        await store.close()


async def publish(settings: Settings, models: Sequence[InputEvent | LoanRequest]) -> None:
    """Publish contract models to their topics, keyed by user id."""
    from streams.devtools.simulation import to_record
    from streams.topics import Topics

    topics = Topics.from_settings(settings)
    records = [to_record(m) for m in models]
    await produce(settings, [(topics.topic_for(r.kind), r.key, r.value) for r in records])


async def wait_applied(
    settings: Settings, user: str, events: int, timeout: float = 60
) -> UserState:
    """Wait until ``events`` events of ``user`` are folded in Redis; return the state."""
    store = store_for(settings)
    try:

        async def applied() -> UserState | None:
            state = await store.read_state(user)
            return state if state is not None and state.events_applied >= events else None

        result: UserState = await wait_for(
            applied, timeout=timeout, interval=0.02, message=f"{events} events of {user}"
        )
        return result
    finally:
        await store.close()


async def decisions_for(
    settings: Settings, requests: Sequence[LoanRequest], timeout: float = 60
) -> dict[str, LoanDecision]:
    """Publish requests and return their decisions by request id."""
    from streams.topics import Topics

    topic = Topics.from_settings(settings).loan_decisions
    await publish(settings, requests)
    wanted = {r.request_id for r in requests}
    found: dict[str, LoanDecision] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not wanted <= set(found):
        # The whole topic as far as it is written (not a time window, which a slow machine
        # may spend starting the consumer), then again after a pause if something is missing.
        for record in await read_to_end(settings, topic):
            decision = LoanDecision.model_validate_json(record.value)
            found[decision.request_id] = decision
        if not wanted <= set(found):
            await asyncio.sleep(0.25)
    missing = wanted - set(found)
    assert not missing, f"no decision for {sorted(missing)}"
    return {k: v for k, v in found.items() if k in wanted}


async def status_changes(settings: Settings, user: str) -> list[LineStatusChanged]:
    """The LineStatusChanged records of ``user``, in publication order per partition."""
    from streams.topics import Topics

    topic = Topics.from_settings(settings).line_status
    records = await read_to_end(settings, topic)
    changes = [
        LineStatusChanged.model_validate_json(r.value) for r in records if r.key == user.encode()
    ]
    return changes


async def persona_outcomes(
    settings: Settings, users: int, seed: int
) -> Counter[tuple[Persona, Outcome, bool]]:
    """Publish one loan request per simulated user and count the decisions by (persona,
    outcome, overrides the displayed status)."""
    topics = Topics.from_settings(settings)
    asks = list(requests(users, seed, datetime.now(UTC)))
    await produce(settings, [(topics.loan_requests, r.key, r.value) for r in asks])
    published = await read_topic(settings, topics.loan_decisions, expect=users, timeout=60)
    decisions = [LoanDecision.model_validate_json(r.value) for r in published]
    assert len(decisions) == users
    return Counter(
        (persona_of(int(d.user_id.rsplit("-", 1)[1])), d.outcome, d.overrides_displayed_status)
        for d in decisions
    )


def mixed_event(
    topics: Topics,
    rng: random.Random,
    user: str,
    event_id: str,
    share: float,
    partition: int,
    offset: int,
) -> InboundRecord:
    """A record of the benchmark's mix, dated anywhere in the last 300 days: by ``share`` (in
    [0, 1)) a spending below 0.6, an on-time repayment below 0.9, else an income asset."""
    at = ts(rng.uniform(0, 300))
    topic: str
    if share < 0.6:
        topic, doc = topics.spending, spending_doc(amount=f"{rng.randint(100, 50_000) / 100:.2f}")
    elif share < 0.9:
        due = rng.randint(5, 30) * 100
        topic, doc = (
            topics.repayments,
            repayment_doc(
                loan_id=f"{user}-l", amount_due=due, amount_paid=due, outstanding_balance=9000
            ),
        )
    else:
        topic, doc = topics.assets, asset_doc(asset_type="income", value=4200)
    doc |= {"event_id": event_id, "user_id": user, "occurred_at": at}
    return InboundRecord(topic, partition, offset, user.encode(), encode(doc))

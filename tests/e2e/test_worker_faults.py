"""The worker process under faults: killed mid-stream, and a batch that cannot be stored."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from datetime import UTC, datetime

import pytest

from streams.adapters.redis.client import redis_client
from streams.adapters.redis.keys import KeyLayout
from streams.devtools.simulation import population_events, to_record
from streams.topics import Topics
from tests.builders import encode, spending_doc
from tests.e2e.conftest import WorkerProcess
from tests.support import (
    StreamGate,
    assert_redis_matches_reference,
    committed_lag,
    headers_of,
    produce,
    read_topic,
    redis_states,
    wait_for,
)


@pytest.mark.slow
# ~90 s here; five restarts and 50,000 events take 5+ minutes on a machine 4× slower.
@pytest.mark.timeout(900)
async def test_killed_worker_loses_and_double_counts_nothing(worker: WorkerProcess) -> None:
    """50,000+ events of 2,000 users (and some bad records) stream in while the worker is
    SIGKILLed five times at random moments and restarted each time."""
    settings = worker.settings
    topics = Topics.from_settings(settings)
    started = time.monotonic()
    events = population_events(2000, seed=23, now=datetime.now(UTC))
    assert len(events) >= 50_000
    history = [to_record(e) for e in events]
    records: list[tuple[str, bytes | None, bytes | None]] = [
        (topics.topic_for(r.kind), r.key, r.value) for r in history
    ]
    bad = [(topic, b"u-bad", b"{not json") for topic in topics.events for _ in range(10)]
    for i, record in enumerate(bad):
        records.insert((i * 1637) % len(records), record)
    chunks = [records[i : i + 2500] for i in range(0, len(records), 2500)]
    # The stream is let through in six stages, one more after each kill (the last after the
    # last kill), and each kill waits for records acknowledged since the one before: however
    # slowly this machine restarts the worker, every kill lands mid-stream.
    stage = len(records) // 6
    gate = StreamGate(stage)
    sent = [0]

    async def stream() -> None:
        for chunk in chunks:
            await gate.admit(sent[0] + len(chunk))
            sent[0] += await produce(settings, chunk)
            await asyncio.sleep(0.5)

    producing = asyncio.create_task(stream())
    rng = random.Random(5)
    kills: list[int] = []  # records acknowledged before each kill
    for kill in range(5):
        await asyncio.sleep(rng.uniform(1.0, 3.0))

        async def progressed(previous: int = kills[-1] if kills else 0) -> bool:
            return sent[0] > previous

        await wait_for(progressed, timeout=120, message="records sent since the last kill")
        kills.append(sent[0])
        worker.kill()  # SIGKILL: no commit, no flush, no goodbye
        # In a thread: the stream's producer keeps running while the worker starts.
        await asyncio.to_thread(worker.start)
        gate.open_to(len(records) if kill == 4 else (kill + 2) * stage)
    await producing
    assert all(0 < before < len(records) for before in kills), kills

    await assert_redis_matches_reference(settings, events, timeout=300)
    # Per topic: applied (in Redis) + dead-lettered (distinct source offsets) = produced.
    states = await redis_states(settings)
    applied = {
        topics.repayments: sum(s.repayments for s in states.values()),
        topics.spending: sum(s.spendings for s in states.values()),
        topics.assets: sum(s.asset_updates for s in states.values()),
    }
    letters = await read_topic(settings, topics.dead_letter, expect=len(bad), timeout=30)
    origins = {
        (h["source.topic"], h["source.partition"], h["source.offset"])
        for h in map(headers_of, letters)
    }
    dead = Counter(topic for topic, _, _ in origins)
    produced = Counter(topic for topic, _, _ in records)
    for topic in topics.events:
        assert applied[topic] + dead[topic] == produced[topic], topic

    async def committed() -> bool:
        return await committed_lag(settings, topics.events) == 0

    await wait_for(committed, timeout=60, message="offsets committed to the log end")
    # The last worker's own books balance too.
    for topic in topics.events:
        consumed = worker.counter("creditline_records_consumed_total", topic=topic)
        accounted = sum(
            worker.counter(f"creditline_records_{kind}_total", topic=topic)
            for kind in ("applied", "duplicate", "dead_lettered")
        )
        assert consumed == accounted, topic
    print(
        f"crash test: {len(events)} events + {len(bad)} bad records, {len(states)} users, "
        f"{len(kills)} SIGKILLs (records sent before each {kills}), "
        f"{time.monotonic() - started:.0f} s"
    )


async def test_a_batch_that_cannot_be_stored_is_never_committed(worker: WorkerProcess) -> None:
    settings = worker.settings
    topics = Topics.from_settings(settings)
    keys = KeyLayout(settings.redis_key_prefix)
    client = redis_client(settings)
    try:
        # Something else wrote a string where the user's state hash belongs: every write for
        # this user fails with WRONGTYPE, which no retry can fix.
        await client.set(keys.state("u-broken"), "not a hash")
        now = datetime.now(UTC).isoformat()
        event = encode(spending_doc(user_id="u-broken", event_id="b-1", occurred_at=now))
        await produce(settings, [(topics.spending, b"u-broken", event)])
        assert worker.process is not None
        await wait_for(
            lambda: asyncio.sleep(0, worker.process.poll() is not None),  # type: ignore[union-attr]
            timeout=60,
            message="the worker to stop",
        )
        assert worker.process.returncode != 0
        assert await committed_lag(settings, [topics.spending]) == 1

        # The operator repairs the key; the restarted worker applies the event.
        await client.delete(keys.state("u-broken"))
        worker.start()

        async def applied() -> bool:
            states = await redis_states(settings)
            return "u-broken" in states and states["u-broken"].spendings == 1

        await wait_for(applied, timeout=60, message="the event applied after the repair")
    finally:
        await client.aclose()

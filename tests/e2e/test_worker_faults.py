"""The worker process under faults: killed mid-stream, and a batch that cannot be stored."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

import redis.asyncio as aioredis

from streams.keys import KeyLayout
from streams.simulation import population_events, to_record
from streams.topics import Topics
from tests.builders import encode, spending_doc
from tests.e2e.conftest import WorkerProcess
from tests.support import (
    assert_redis_matches_reference,
    committed_lag,
    produce,
    redis_states,
    wait_for,
)


async def test_killed_worker_loses_and_double_counts_nothing(worker: WorkerProcess) -> None:
    settings = worker.settings
    topics = Topics.from_settings(settings)
    events = population_events(300, seed=23, now=datetime.now(UTC))
    history = [to_record(e) for e in events]
    records = [(topics.topic_for(r.kind), r.key, r.value) for r in history]
    chunks = [records[i : i + 250] for i in range(0, len(records), 250)]

    async def stream() -> None:
        for chunk in chunks:
            await produce(settings, chunk)
            await asyncio.sleep(0.15)

    producing = asyncio.create_task(stream())
    rng = random.Random(5)
    for _ in range(3):
        await asyncio.sleep(rng.uniform(0.5, 1.5))
        worker.kill()  # SIGKILL: no commit, no flush, no goodbye
        worker.start()
    await producing

    await assert_redis_matches_reference(settings, events, timeout=120)

    async def committed() -> bool:
        return await committed_lag(settings, topics.events) == 0

    await wait_for(committed, timeout=30, message="offsets committed to the log end")


async def test_a_batch_that_cannot_be_stored_is_never_committed(worker: WorkerProcess) -> None:
    settings = worker.settings
    topics = Topics.from_settings(settings)
    keys = KeyLayout(settings.redis_key_prefix)
    client = aioredis.Redis.from_url(settings.redis_url.get_secret_value())
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

"""Network faults between the worker and Redis, and between the worker and Kafka.

The worker runs as a process and reaches Redis (or Kafka) only through a toxiproxy proxy of
the test's own (``tests/toxiproxy.py``): added latency with jitter, connections reset, a full
partition (a blackhole: connections stay open, nothing gets through), the link cut, then
healed. Nothing is lost or double-counted, offsets are committed only for stored batches,
and a loan request whose state cannot be read is answered ``review`` with
``SCORE_UNAVAILABLE`` within the configured wait — never approved.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
import redis.exceptions
from redis.backoff import NoBackoff
from redis.retry import Retry

from schemas.models import Outcome
from streams.settings import Settings
from streams.simulation import population_events
from streams.topics import Topics
from tests.conftest import isolated
from tests.e2e.conftest import PrivateRedis, WorkerProcess, free_port, running_worker
from tests.fault_checks import (
    as_records,
    ask,
    assert_every_record_accounted,
    bad_records,
    codes,
    wait_committed,
)
from tests.support import (
    assert_redis_matches_reference,
    assert_trajectories_match_reference,
    committed_lag,
    produce,
    wait_applied,
)
from tests.toxiproxy import Proxy, running_toxiproxy


def test_the_fault_proxy_injects_what_the_tests_rely_on(tmp_path: Path) -> None:
    """Each toxic does what the fault tests assume, measured through a proxy to a Redis."""
    first, second = PrivateRedis(tmp_path / "a"), PrivateRedis(tmp_path / "b")
    for server in (first, second):
        server.directory.mkdir()
        server.start()
    try:
        with running_toxiproxy(tmp_path / "toxiproxy") as toxiproxy:
            proxy = toxiproxy.proxy("redis", f"127.0.0.1:{first.port}")

            def client() -> redis.Redis:
                # No retries of redis-py's own (the worker's asyncio clients have none).
                return redis.Redis(
                    port=proxy.port,
                    socket_timeout=1,
                    socket_connect_timeout=1,
                    retry=Retry(NoBackoff(), 0),
                )

            c = client()
            c.set("where", "first")

            def ping_seconds() -> float:
                started = time.monotonic()
                c.ping()
                return time.monotonic() - started

            with proxy.toxic(proxy.latency(200, 20)):
                assert 0.36 < ping_seconds() < 0.8  # 200 ± 20 ms each way
            assert ping_seconds() < 0.1
            reset = pytest.raises(redis.exceptions.ConnectionError, match="reset by peer")
            with proxy.toxic([proxy.reset_peer()]), reset:
                client().ping()
            with proxy.toxic(proxy.blackhole()), pytest.raises(redis.exceptions.TimeoutError):
                client().ping()
            assert client().ping()
            proxy.disable()
            with pytest.raises(redis.exceptions.ConnectionError, match="refused"):
                client().ping()
            proxy.enable()
            assert client().get("where") == b"first"
            proxy.repoint(f"127.0.0.1:{second.port}")
            assert client().get("where") is None
    finally:
        first.stop()
        second.stop()


@pytest.mark.slow
async def test_redis_latency_resets_and_a_partition_lose_nothing_and_never_approve_blindly(
    base_settings: Settings, private_redis: PrivateRedis, tmp_path: Path
) -> None:
    """An events worker and a decisions worker reach their Redis through a proxy: 200 ± 50 ms
    each way, then connections reset, then a 15 s partition, then healed."""
    with running_toxiproxy(tmp_path / "toxiproxy") as toxiproxy:
        proxy = toxiproxy.proxy("redis", f"127.0.0.1:{private_redis.port}")
        settings = isolated(
            base_settings,
            partitions=12,
            web_port=free_port(),
            redis_url=f"redis://{proxy.address}/0",
            score_unavailable_wait_seconds=2.0,
        )
        await redis_faults(settings, proxy, tmp_path)


async def redis_faults(settings: Settings, proxy: Proxy, tmp_path: Path) -> None:
    topics = Topics.from_settings(settings)
    events = population_events(300, seed=61, now=datetime.now(UTC))
    steady = "user-000000"  # a steady payer: approved whenever its state can be read
    first = as_records(topics, [e for e in events if e.user_id == steady])
    rest = as_records(topics, [e for e in events if e.user_id != steady])
    bad = bad_records(topics.events, per_topic=5)
    for i, record in enumerate(bad):
        rest.insert((i * 997) % len(rest), record)
    chunks = [rest[i::3] for i in range(3)]
    produced = Counter(topic for topic, _, _ in [*first, *rest])
    dead = Counter(topic for topic, _, _ in bad)
    figures: dict[str, object] = {"events": len(events), "bad": len(bad)}

    decider = WorkerProcess(
        settings.model_copy(update={"worker_role": "decisions", "web_port": free_port()}),
        tmp_path / "decisions.log",
    )
    events_only = settings.model_copy(update={"worker_role": "events"})
    async with running_worker(events_only, tmp_path / "worker.log") as worker:
        decider.start()
        try:
            assert worker.process is not None
            pid = worker.process.pid
            await produce(settings, first)
            await wait_applied(settings, steady, len(first))
            baseline, _ = await ask(settings, "q-before", steady)
            assert baseline.outcome is Outcome.APPROVED, codes(baseline)

            # 1. Latency: 200 ± 50 ms each way on every Redis round trip.
            latency = proxy.latency(200, 50)
            await produce(settings, chunks[0])
            slow, slow_seconds = await ask(settings, "q-latency", steady)
            assert slow.outcome is Outcome.APPROVED, codes(slow)  # slow, but read
            figures["decision_under_latency_s"] = round(slow_seconds, 2)
            await asyncio.sleep(6)
            for name in latency:
                proxy.remove_toxic(name)

            # 2. Resets: 12 times, while events keep coming, every connection that Redis
            # answers within 0.3 s is reset instead (the command ran, its reply is lost).
            for part in range(12):
                await produce(settings, chunks[1][part::12])
                resets = proxy.reset_peer()
                await asyncio.sleep(0.3)
                proxy.remove_toxic(resets)
                await asyncio.sleep(0.4)

            # 3. A partition: nothing gets through, connections hang until their timeouts.
            partition = proxy.blackhole()
            cut = time.monotonic()
            await produce(settings, chunks[2])
            blind, blind_seconds = await ask(settings, "q-partition", steady)
            assert blind.outcome is Outcome.REVIEW, codes(blind)
            assert codes(blind) == ["SCORE_UNAVAILABLE"]
            # The configured 2 s wait, one 2 s socket timeout in flight, Kafka both ways.
            assert blind_seconds < 8, blind_seconds
            figures["decision_in_partition_s"] = round(blind_seconds, 2)
            await asyncio.sleep(max(0.0, 15 - (time.monotonic() - cut)))
            assert await committed_lag(settings, topics.events) > 0  # not stored: not committed
            for name in partition:
                proxy.remove_toxic(name)
            healed = time.monotonic()
            figures["partition_s"] = round(healed - cut, 1)

            await assert_redis_matches_reference(settings, events, timeout=120)
            figures["recovered_s"] = round(time.monotonic() - healed, 1)
            await wait_committed(settings, topics.events)
            await assert_trajectories_match_reference(settings, events)
            assert worker.process.poll() is None and worker.process.pid == pid
            after, _ = await ask(settings, "q-after", steady)
            assert after.outcome is Outcome.APPROVED, codes(after)
            figures["accounted"] = assert_every_record_accounted(worker, produced, dead)
            log_text = worker.log()
            figures["retries"] = log_text.count("; retry ")
            assert "failed (TimeoutError); retry" in log_text, log_text[-3000:]
            assert "failed (ConnectionError); retry" in log_text, log_text[-3000:]
            print("redis network faults:", figures)
        finally:
            decider.stop()  # before its topics are deleted

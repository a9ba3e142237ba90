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
import contextlib
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
import redis.exceptions
from pydantic import SecretStr
from redis.backoff import NoBackoff
from redis.retry import Retry

from schemas.models import Outcome
from streams.adapters.kafka.admin import ensure_topics
from streams.adapters.kafka.events import EventConsumer
from streams.devtools.simulation import population_events
from streams.devtools.stack.kafka import KafkaCluster
from streams.ports import InboundRecord
from streams.settings import Settings
from streams.topics import Topics
from tests.conftest import isolated
from tests.e2e.conftest import (
    PrivateRedis,
    WorkerProcess,
    free_port,
    private_kafka,
    running_worker,
)
from tests.fault_checks import (
    as_records,
    ask,
    assert_dead_letters_of,
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
    wait_for,
)
from tests.toxiproxy import Proxy, Toxiproxy, running_toxiproxy


def test_the_fault_proxy_injects_what_the_tests_rely_on(tmp_path: Path) -> None:
    """Each toxic does what the fault tests assume, measured through a proxy to a Redis."""
    first, second = PrivateRedis(tmp_path / "a"), PrivateRedis(tmp_path / "b")
    try:
        for server in (first, second):
            server.directory.mkdir()
            server.start()
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
                # 200 ± 20 ms each way (the upper bound leaves room for a slow machine).
                assert 0.36 < ping_seconds() < 2
            assert ping_seconds() < 0.3  # the latency is gone (a slow machine's ping included)
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
@pytest.mark.timeout(900)  # under a minute here; several on a slower machine
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
        try:
            decider.start()
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
            figures["dead_letter_copies"] = await assert_dead_letters_of(settings, dead)
            log_text = worker.log()
            figures["retries"] = log_text.count("; retry ")
            assert "failed (TimeoutError); retry" in log_text, log_text[-3000:]
            assert "failed (ConnectionError); retry" in log_text, log_text[-3000:]
            print("redis network faults:", figures)
        finally:
            if decider.process is not None:
                decider.stop()  # before its topics are deleted


class ProxiedKafka(KafkaCluster):
    """A one-node Kafka with a second listener, ``PROXIED``, whose advertised address is a
    proxy's: clients bootstrapping through the proxy are told to reach the broker through
    it, while the test's own clients use the ordinary listener directly."""

    def __init__(self, root: Path, proxy_port: int) -> None:
        template = private_kafka(root, nodes=1)
        super().__init__(
            base=template.base,
            run_dir=template.run_dir,
            log_dir=template.log_dir,
            libs=template.libs,
            nodes=template.nodes,
            heap=template.heap,
        )
        self.proxied_port = free_port()
        self.proxy_port = proxy_port

    def prepare(self) -> None:
        super().prepare()
        (node,) = self.nodes
        path = self.node_dir(node.node_id) / "server.properties"
        props = dict(line.split("=", 1) for line in path.read_text().splitlines() if line)
        host = self.host
        props["listeners"] += f",PROXIED://{host}:{self.proxied_port}"
        props["advertised.listeners"] += f",PROXIED://{host}:{self.proxy_port}"
        props["listener.security.protocol.map"] += ",PROXIED:PLAINTEXT"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))


@contextlib.contextmanager
def proxied_kafka(toxiproxy: Toxiproxy, tmp_path: Path) -> Iterator[tuple[ProxiedKafka, Proxy]]:
    """A one-node Kafka of the test's own, reached by its clients through a toxiproxy proxy
    (the test's own clients use ``kafka.bootstrap_servers`` directly); stopped afterwards."""
    proxy_port = free_port()
    kafka = ProxiedKafka(tmp_path / "kafka", proxy_port)
    kafka.start()
    try:
        yield (
            kafka,
            toxiproxy.proxy("kafka", f"127.0.0.1:{kafka.proxied_port}", listen_port=proxy_port),
        )
    finally:
        kafka.stop()


@pytest.mark.slow
@pytest.mark.timeout(900)  # under a minute here; several on a slower machine
async def test_kafka_latency_resets_a_partition_and_a_cut_lose_and_double_count_nothing(
    base_settings: Settings, tmp_path: Path
) -> None:
    """A worker reaches its broker only through a proxy: 200 ± 50 ms each way, replies lost
    to resets, a 15 s partition, the link cut for 8 s; the test's clients go direct. (Its
    Redis goes through a proxy too, slowed down while the partition begins.)"""
    with (
        running_toxiproxy(tmp_path / "toxiproxy") as toxiproxy,
        proxied_kafka(toxiproxy, tmp_path) as (kafka, proxy),
    ):
        host, port = base_settings.redis_endpoint
        slow_redis = toxiproxy.proxy("redis", f"{host}:{port}")
        direct = isolated(
            base_settings,
            partitions=12,
            web_port=free_port(),
            kafka_bootstrap_servers=kafka.bootstrap_servers,
        )
        worker_settings = direct.model_copy(
            update={
                "kafka_bootstrap_servers": proxy.address,
                "redis_url": SecretStr(f"redis://{slow_redis.address}/0"),
            }
        )
        await kafka_faults(direct, worker_settings, proxy, slow_redis, tmp_path)


async def kafka_faults(
    settings: Settings,
    worker_settings: Settings,
    proxy: Proxy,
    slow_redis: Proxy,
    tmp_path: Path,
) -> None:
    topics = Topics.from_settings(settings)
    events = population_events(300, seed=67, now=datetime.now(UTC))
    steady = "user-000000"  # a steady payer: approved whenever its state can be read
    first = as_records(topics, [e for e in events if e.user_id == steady])
    rest = as_records(topics, [e for e in events if e.user_id != steady])
    bad = bad_records(topics.events, per_topic=5)
    for i, record in enumerate(bad):
        rest.insert((i * 1013) % len(rest), record)
    chunks = [rest[i::4] for i in range(4)]
    produced = Counter(topic for topic, _, _ in [*first, *rest])
    dead = Counter(topic for topic, _, _ in bad)
    figures: dict[str, object] = {"events": len(events), "bad": len(bad)}
    await ensure_topics(settings)
    async with running_worker(worker_settings, tmp_path / "worker.log") as worker:
        assert worker.process is not None
        pid = worker.process.pid
        await produce(settings, first)
        await wait_applied(settings, steady, len(first))  # the event fold has its partitions
        started = time.monotonic()

        # 1. Latency: 200 ± 50 ms each way on every Kafka request.
        latency = proxy.latency(200, 50)
        await produce(settings, chunks[0])
        slow, seconds = await ask(settings, "q-latency", steady)
        assert slow.outcome is Outcome.APPROVED, codes(slow)
        figures["decision_under_latency_s"] = round(seconds, 2)
        await asyncio.sleep(max(0.0, 6 - (time.monotonic() - started)))
        for name in latency:
            proxy.remove_toxic(name)

        # 2. Resets: 10 times, while events keep coming, every connection the broker answers
        # within 0.3 s is reset instead (fetches, commits, heartbeats, produce requests:
        # executed, reply lost).
        for part in range(10):
            await produce(settings, chunks[1][part::10])
            resets = proxy.reset_peer()
            await asyncio.sleep(0.3)
            proxy.remove_toxic(resets)
            await asyncio.sleep(0.3)

        # 3. A partition for 15 s (longer than the 10 s session timeout) that starts while
        # a batch is being folded (Redis slowed down to make sure): the batch is stored, its
        # commit is lost; the group moves on without the worker.
        consumed = worker.counter("creditline_records_consumed_total")
        slowly = slow_redis.latency(300)
        streaming = asyncio.create_task(produce(settings, chunks[2]))

        async def folding() -> bool:  # a batch of the stream is being folded
            return worker.counter("creditline_records_consumed_total") > consumed

        await wait_for(folding, interval=0.01, message="a batch in flight")
        partition = proxy.blackhole()
        cut = time.monotonic()
        await streaming
        await asyncio.sleep(3)
        for name in slowly:
            slow_redis.remove_toxic(name)
        await asyncio.sleep(12)
        lag_in_partition = await committed_lag(settings, topics.events)
        assert lag_in_partition > 0  # fetched or not, nothing more could be committed
        for name in partition:
            proxy.remove_toxic(name)
        figures["partition_s"] = round(time.monotonic() - cut, 1)
        figures["lag_in_partition"] = (lag_in_partition, len(chunks[2]))
        await wait_committed(settings, topics.events, timeout=120)
        figures["partition_recovered_s"] = round(time.monotonic() - cut - 15, 1)

        # 4. The link cut for 8 s: connections closed, new ones refused.
        proxy.disable()
        cut = time.monotonic()
        await produce(settings, chunks[3])
        await asyncio.sleep(8)
        assert await committed_lag(settings, topics.events) == len(chunks[3])
        proxy.enable()
        figures["cut_s"] = round(time.monotonic() - cut, 1)

        await assert_redis_matches_reference(settings, events, timeout=120)
        figures["cut_recovered_s"] = round(time.monotonic() - cut - 8, 1)
        await wait_committed(settings, topics.events)
        await assert_trajectories_match_reference(settings, events)
        figures["faults_to_recovery_s"] = round(time.monotonic() - started, 1)
        assert worker.process.poll() is None and worker.process.pid == pid
        figures["accounted"] = assert_every_record_accounted(worker, produced, dead)
        figures["dead_letter_copies"] = await assert_dead_letters_of(settings, dead)
        # The decisions side came back too.
        after, seconds = await ask(settings, "q-after", steady)
        assert after.outcome is Outcome.APPROVED, codes(after)
        figures["decision_after_s"] = round(seconds, 2)
        print("kafka network faults:", figures)


@pytest.mark.timeout(300)  # about 30 s here
async def test_a_backlog_read_through_a_slow_link_fills_its_batches(
    base_settings: Settings, tmp_path: Path
) -> None:
    """Every fetch round crosses a link that takes 150 ms each way, three times the live wait
    (``batch_max_wait_seconds``): a backlog's batches still fill to their limit, round after
    round, rather than closing at the first round the broker has not answered in time."""
    with (
        running_toxiproxy(tmp_path / "toxiproxy") as toxiproxy,
        proxied_kafka(toxiproxy, tmp_path) as (kafka, proxy),
    ):
        direct = isolated(
            base_settings,
            partitions=4,
            kafka_bootstrap_servers=kafka.bootstrap_servers,
            batch_max_records=4000,
            fetch_partition_bytes=16 * 1024,  # a round returns far less than a batch
        )
        topics = Topics.from_settings(direct).events
        await ensure_topics(direct)
        total = 16_000
        await produce(
            direct,
            [(topics[0], f"k{i}".encode(), b"x" * 200) for i in range(total)],
            partition_of=lambda i: i % 4,
        )
        proxy.latency(150)
        sizes: list[int] = []
        done = asyncio.Event()

        async def collecting(batch: Sequence[InboundRecord]) -> None:
            sizes.append(len(batch))
            if sum(sizes) >= total:
                done.set()

        slow = direct.model_copy(update={"kafka_bootstrap_servers": proxy.address})
        consumer = EventConsumer(slow, topics, collecting)
        consumer.sizer.target_seconds = 3600.0  # a fast pace: only the ceiling bounds them
        await consumer.start()
        try:
            await asyncio.wait_for(consumer.run(done.is_set), 180)
        finally:
            await consumer.stop()
        assert sum(sizes) == total
        # The first batch takes at most FIRST_BATCH_RECORDS, the next three the ceiling;
        # the rest ends where the log holds less than a round's worth past it.
        assert sizes[0] <= 1000 and sizes[1:4] == [4000] * 3, sizes
        assert await committed_lag(direct, topics) == 0

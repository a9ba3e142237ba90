"""Fixtures shared by every test layer; integration and e2e tests need the local stack.

Each test gets its own topics, Redis key prefix and consumer group, so tests never see each
other's records and can run against a developer's running stack.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import pytest
import redis.exceptions
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import SecretStr

from streams.adapters.kafka.admin import ensure_topics
from streams.adapters.kafka.client import client_options
from streams.adapters.redis.client import redis_client
from streams.devtools.stack.local import port_open
from streams.settings import Settings
from streams.topics import Topics
from tests import properties, scheduling  # noqa: F401 (properties: the Hypothesis profile)
from tests.redis_nodes import LocalRedisCluster
from tests.secure_redis import SecureRedis

ROOT = Path(__file__).resolve().parent
pytest_plugins = ["pytester", "tests.hang_report"]


def pytest_addoption(parser: pytest.Parser) -> None:
    scheduling.add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("store_durations") and not hasattr(config, "workerinput"):
        config.pluginmanager.register(scheduling.DurationRecorder(), "creditline-durations")


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """How many processes ``-n auto`` (the default) starts: see tests/scheduling.py."""
    return scheduling.worker_count(config)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark tests by their folder, so `-m integration` or `-m 'not e2e'` select layers; on a
    pytest-xdist worker, group and order them (tests/scheduling.py)."""
    for item in items:
        path = Path(str(item.fspath)).resolve()
        if ROOT / "integration" in path.parents:
            item.add_marker(pytest.mark.integration)
        if ROOT / "e2e" in path.parents:
            item.add_marker(pytest.mark.e2e)
    if hasattr(config, "workerinput"):
        scheduling.schedule(items)


def stack_settings() -> Settings:
    """Settings from the environment; fails fast when the stack is not running."""
    settings = Settings()
    host, port = settings.kafka_endpoints[0]
    if not port_open(host, port):
        pytest.fail(f"Kafka is not reachable at {host}:{port}: run `make up` first")
    r_host, r_port = settings.redis_endpoint
    if not port_open(r_host, r_port):
        pytest.fail(f"Redis is not reachable at {r_host}:{r_port}: run `make up` first")
    return settings


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    """Settings from the environment; fails fast when the stack is not running.

    The workers' folds are not niced: a test's workers, its load generators and the test
    itself share one session (one autogroup), where a fold at niceness 19 yields to the
    test's own load, and beside a CPU burner in a slowed run gets ~1.5 % of a core.
    ``tests/e2e/test_fold_process.py`` checks that the niceness is applied."""
    return stack_settings().model_copy(update={"worker_fold_nice": 0})


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedisCluster]:
    """A Redis Cluster of 3 masters of the test session's own, started once."""
    cluster = LocalRedisCluster(tmp_path_factory.mktemp("redis-cluster"))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def secure_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureRedis]:
    """A TLS-only redis-server with ACL users (default user off), started once."""
    server = SecureRedis.start(tmp_path_factory.mktemp("secure-redis"))
    try:
        yield server
    finally:
        server.stop()


def on_cluster(base: Settings, cluster: LocalRedisCluster) -> Settings:
    """The same settings with Redis on the local cluster."""
    return base.model_copy(update={"redis_url": SecretStr(cluster.url), "redis_cluster": True})


def isolated(base: Settings, partitions: int = 4, **overrides: object) -> Settings:
    """Settings with unique topics, key prefix and consumer group."""
    run = uuid.uuid4().hex[:10]
    names = {
        f"topic_{name}": f"t{run}.{name.replace('_', '-')}"
        for name in (
            "repayments",
            "spending",
            "assets",
            "loan_requests",
            "loan_decisions",
            "loan_decisions_shadow",
            "dead_letter",
            "line_status",
            "policy",
        )
    }
    values: dict[str, object] = {
        **base.model_dump(),
        **names,
        "redis_key_prefix": f"t{run}",
        "app_id": f"creditline-t{run}",
        "topic_partitions": partitions,
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def settings(base_settings: Settings) -> AsyncIterator[Settings]:
    """Isolated settings with their topics created; Redis keys removed afterwards."""
    s = isolated(base_settings)
    await ensure_topics(s)
    yield s
    await cleanup(s)


async def cleanup(s: Settings, *, topics: bool = True, also: Sequence[str] = ()) -> None:
    """Delete a test's Redis keys and (unless ``topics`` is false) its topics, with the
    topics named in ``also`` that it made beside them."""
    client = redis_client(s)
    try:
        keys = [k async for k in client.scan_iter(match=f"{s.redis_key_prefix}:*", count=1000)]
        # One DEL per key: on a cluster the keys live in many slots (the pipeline routes each).
        async with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.delete(key)
            await pipe.execute()
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
        # Best effort: a test may have stopped its Redis, or a busy machine made a SCAN miss
        # the client's 2 s timeout; the keys are the test's own prefix, and a cleanup must
        # never fail a test whose assertions held (nor mask its own error).
        pass
    finally:
        await client.aclose()
    if not topics:
        return
    admin = AIOKafkaAdminClient(**client_options(s))
    await admin.start()
    try:
        with contextlib.suppress(Exception):  # best effort: the broker may be going down
            await admin.delete_topics(await _topics_of_run(admin, s, also))
    finally:
        await admin.close()


async def _topics_of_run(admin: AIOKafkaAdminClient, s: Settings, also: Sequence[str]) -> list[str]:
    """The run's topics and ``also``, those that exist. Left behind, thousands of partitions
    pile up on a local broker and slow every later run."""
    wanted = {t.name for t in Topics.from_settings(s).specs(s)} | set(also)
    return sorted(wanted.intersection(await admin.list_topics()))

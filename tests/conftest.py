"""Fixtures shared by every test layer; integration and e2e tests need the local stack.

Each test gets its own topics, Redis key prefix and consumer group, so tests never see each
other's records and can run against a developer's running stack.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
import redis.exceptions

from streams.adapters.kafka_admin import ensure_topics
from streams.adapters.kafka_client import client_options
from streams.settings import Settings
from streams.stack.local import port_open
from streams.topics import Topics

ROOT = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark tests by their folder, so `-m integration` or `-m 'not e2e'` select layers."""
    for item in items:
        path = Path(str(item.fspath)).resolve()
        if ROOT / "integration" in path.parents:
            item.add_marker(pytest.mark.integration)
        if ROOT / "e2e" in path.parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    """Settings from the environment; fails fast when the stack is not running."""
    settings = Settings()
    host, port = settings.kafka_endpoints[0]
    if not port_open(host, port):
        pytest.fail(f"Kafka is not reachable at {host}:{port}: run `make up` first")
    r_host, r_port = settings.redis_endpoint
    if not port_open(r_host, r_port):
        pytest.fail(f"Redis is not reachable at {r_host}:{r_port}: run `make up` first")
    return settings


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


async def cleanup(s: Settings) -> None:
    """Delete a test's Redis keys and topics."""
    from aiokafka.admin import AIOKafkaAdminClient

    client = aioredis.Redis.from_url(s.redis_url.get_secret_value())
    try:
        keys = [k async for k in client.scan_iter(match=f"{s.redis_key_prefix}:*", count=1000)]
        for start in range(0, len(keys), 1000):
            await client.delete(*keys[start : start + 1000])
    except redis.exceptions.ConnectionError:
        pass  # best effort: a test may have stopped its Redis; never mask the test's own error
    finally:
        await client.aclose()
    admin = AIOKafkaAdminClient(**client_options(s))
    await admin.start()
    try:
        with contextlib.suppress(Exception):  # best effort: the broker may be going down
            await admin.delete_topics([t.name for t in Topics.from_settings(s).specs(s)])
    finally:
        await admin.close()

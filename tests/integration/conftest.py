"""Integration tests run twice: on the single Redis and on a local Redis Cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from streams.adapters.kafka.admin import ensure_topics
from streams.settings import Settings
from tests.conftest import cleanup, isolated, on_cluster, stack_settings
from tests.redis_nodes import LocalRedisCluster


@pytest.fixture(params=["standalone", "cluster"])
def base_settings(base_settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """The session's settings, with Redis standalone or on the cluster (started on first use)."""
    if request.param == "standalone":
        return base_settings
    cluster: LocalRedisCluster = request.getfixturevalue("redis_cluster")
    return on_cluster(base_settings, cluster)


@pytest.fixture
async def kafka_settings() -> AsyncIterator[Settings]:
    """Isolated topics on the real broker (Kafka only: runs once, not per Redis kind); a
    module that needs other sizes defines its own."""
    s = isolated(stack_settings(), partitions=4)
    await ensure_topics(s)
    yield s
    await cleanup(s)

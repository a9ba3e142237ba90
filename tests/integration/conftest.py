"""Integration tests run twice: on the single Redis and on a local Redis Cluster."""

from __future__ import annotations

import pytest

from streams.settings import Settings
from tests.conftest import on_cluster
from tests.redis_nodes import LocalRedisCluster


@pytest.fixture(params=["standalone", "cluster"])
def base_settings(base_settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """The session's settings, with Redis standalone or on the cluster (started on first use)."""
    if request.param == "standalone":
        return base_settings
    cluster: LocalRedisCluster = request.getfixturevalue("redis_cluster")
    return on_cluster(base_settings, cluster)

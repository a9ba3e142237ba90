"""The store with CREDITLINE_REDIS_MIN_REPLICAS on a private primary and replica: a write
counts as done only once a replica has it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from streams.adapters.redis.errors import NotReplicated, StoreUnavailable
from streams.adapters.redis.store import RedisStore
from streams.core.ledger import encode_entry, fingerprint
from streams.metrics import Metrics
from streams.ports import UserWrite
from streams.settings import Settings
from tests.builders import spending
from tests.checkpoints import checkpoint_of
from tests.redis_nodes import RedisServer
from tests.redis_replicas import cli, kill, redis_server, url_of, wait_in_sync


@pytest.fixture
def primary(tmp_path: Path) -> Iterator[RedisServer]:
    server = redis_server(tmp_path / "primary")
    try:
        yield server
    finally:
        server.stop()


def store_on(server: RedisServer, min_replicas: int) -> RedisStore:
    settings = Settings(
        redis_url=SecretStr(url_of(server)),
        redis_min_replicas=min_replicas,
        redis_key_prefix=f"t{uuid.uuid4().hex[:8]}",
    )
    return RedisStore.connect(settings, Metrics())


def write_of(user: str) -> tuple[UserWrite, int]:
    event = spending(user_id=user)
    fp = fingerprint(event.event_id)
    return UserWrite(user, 0, checkpoint_of([event]), [encode_entry(event)]), fp


async def test_writes_count_only_once_a_replica_has_them(
    primary: RedisServer, tmp_path: Path
) -> None:
    replica = redis_server(tmp_path / "replica", replica_of=f"127.0.0.1:{primary.port}")
    later: RedisServer | None = None
    store = store_on(primary, min_replicas=1)
    try:
        wait_in_sync(primary)
        write, _ = write_of("u-1")
        assert await store.save([write]) == []
        # WAIT returned: the replica has the write already (no polling).
        assert cli(replica, "hget", store.keys.state("u-1"), "ver") == "1"
        assert await store.remember_decision("u-1", "q-1", b"{}", 60) is None
        assert cli(replica, "exists", store.keys.decision("u-1", "q-1")) == "1"

        kill(replica)  # no replica acknowledges any more
        write, fp = write_of("u-2")
        started = time.monotonic()
        with pytest.raises(StoreUnavailable) as raised:  # retried like an outage, never skipped
            await store.save([write])
        # The 1 s WAIT timeout, then an error: never a hang (the upper bound is generous for
        # slow machines; the lower one shows the write was waited for).
        assert 0.9 < time.monotonic() - started < 10
        assert isinstance(raised.value.__cause__, NotReplicated)
        # The write is on the primary, but unconfirmed: before the batch is re-read (and
        # the user found "already applied"), a replica must have it.
        assert cli(primary, "hget", store.keys.state("u-2"), "ver") == "1"
        with pytest.raises(StoreUnavailable, match="NotReplicated"):
            await store.load({"u-2": ["s-1"]})
        with pytest.raises(StoreUnavailable, match="NotReplicated"):
            await store.remember_decision("u-2", "q-2", b"{}", 60)

        later = redis_server(tmp_path / "replica-2", replica_of=f"127.0.0.1:{primary.port}")
        wait_in_sync(primary)
        loaded = await store.load({"u-2": ["s-1"]})
        assert loaded["u-2"].already_applied == frozenset({fp})
        assert cli(later, "hget", store.keys.state("u-2"), "ver") == "1"
        assert cli(later, "get", store.keys.replication_fence()) == "1"
        # The decision stored before is found (and now replicated).
        remembered = await store.remember_decision("u-2", "q-2", b"{}", 60)
        assert remembered is not None and remembered.payload == b"{}"
    finally:
        await store.close()
        replica.stop()
        if later is not None:
            later.stop()


async def test_without_min_replicas_nothing_waits(primary: RedisServer) -> None:
    store = store_on(primary, min_replicas=0)
    try:
        write, _ = write_of("u-1")
        started = time.monotonic()
        assert await store.save([write]) == []  # no replica at all: not waited for
        assert time.monotonic() - started < 0.9  # under WAIT's 1 s timeout: not waited for
    finally:
        await store.close()


def test_min_replicas_is_refused_on_a_cluster() -> None:
    with pytest.raises(ValueError, match="REDIS_MIN_REPLICAS is not supported with REDIS_CLUSTER"):
        Settings(redis_cluster=True, redis_min_replicas=1)

"""creditline's ACL user over TLS: everything the store does works, nothing else does."""

from __future__ import annotations

import secrets
import socket
from datetime import UTC, datetime

import pytest
import redis.exceptions

from streams.adapters.redis.client import redis_client, redis_problem
from streams.adapters.redis.store import RedisStore, UserWrite
from streams.core.ledger import encode_entry
from streams.metrics import Metrics
from streams.settings import Settings
from tests.builders import spending
from tests.checkpoints import checkpoint_of, default_timelines, standing_of
from tests.conftest import isolated
from tests.secure_redis import SecureRedis


@pytest.fixture
async def acl_settings(secure_redis: SecureRedis) -> Settings:
    """Isolated settings as creditline's user (granted by the code's rule) over mutual TLS."""
    password = secrets.token_urlsafe(18)
    settings = secure_redis.settings(isolated(Settings()), "creditline", password)
    await secure_redis.grant(settings, password)
    return settings


async def test_every_store_operation_works_as_the_acl_user(
    acl_settings: Settings, secure_redis: SecureRedis
) -> None:
    store = RedisStore.connect(acl_settings, Metrics())
    try:
        assert await store.ping()
        assert (await store.load({"u-1": ["s-1"]}))["u-1"].version == 0  # scripts loaded here
        event = spending(user_id="u-1")
        checkpoint = checkpoint_of([event])
        shown = standing_of(checkpoint)
        assert shown is not None
        write = UserWrite(
            "u-1",
            0,
            checkpoint,
            [encode_entry(event)],
            status_event=b"{}",
        )
        assert await store.save([write]) == []
        rewrite = UserWrite("u-1", 1, checkpoint, [encode_entry(event)], rewrite=True)
        assert await store.save([rewrite]) == []
        await store.clear_status_events({"u-1": b"{}"})
        assert (await store.read_user("u-1")).checkpoint == checkpoint
        assert len(await store.read_ledger("u-1")) == 1
        await store.ensure_layout()
        due = datetime(2026, 1, 1, tzinfo=UTC)
        await store.schedule({(0, "u-1"): due})
        assert await store.schedule_policy(0, due) == 0
        assert [u for u, _ in await store.due_reviews(0, datetime.now(UTC), 10)] == ["u-1"]
        await store.schedule({(0, "u-1"): None})
        assert (await store.read_summary("u-1", default_timelines()))["score"] == str(shown.score)
        assert await store.remember_decision("u-1", "q-1", b"d", 60) is None
        assert [u async for u, _ in store.scan_states()] == ["u-1"]
    finally:
        await store.close()
    # Nothing was refused, inside the Lua scripts included.
    assert await secure_redis.acl_log(acl_settings) == []


async def test_the_acl_user_gets_noperm_for_anything_else(acl_settings: Settings) -> None:
    client = redis_client(acl_settings)
    try:
        with pytest.raises(redis.exceptions.NoPermissionError):
            await client.flushall()
        with pytest.raises(redis.exceptions.NoPermissionError):
            await client.config_get("*")
        with pytest.raises(redis.exceptions.NoPermissionError):
            await client.set("elsewhere:{u-1}:state", "x")
        with pytest.raises(redis.exceptions.NoPermissionError):
            await client.hmget("elsewhere:{u-1}:state", ["state"])
        # A granted command on its own prefix works on the same connection.
        assert await client.set(f"{acl_settings.redis_key_prefix}:{{u-1}}:decision:q", "x")
    finally:
        await client.aclose()


async def test_plaintext_is_refused_by_the_tls_port(
    acl_settings: Settings, secure_redis: SecureRedis
) -> None:
    url = acl_settings.redis_url.get_secret_value().replace("rediss://", "redis://")
    plaintext = Settings(redis_url=url)
    problem = await redis_problem(plaintext)
    assert problem is not None
    assert "use a rediss:// URL" in problem
    # On the wire: a plaintext PING gets no PONG, the server drops the connection.
    with socket.create_connection(("127.0.0.1", secure_redis.server.port), timeout=5) as sock:
        sock.sendall(b"PING\r\n")
        try:
            reply = sock.recv(64)
        except ConnectionResetError:
            reply = b""
    assert b"PONG" not in reply


async def test_tls_without_a_client_certificate_or_with_an_unknown_ca_is_refused(
    acl_settings: Settings,
) -> None:
    no_cert = acl_settings.model_copy(
        update={"redis_tls_cert_file": None, "redis_tls_key_file": None}
    )
    problem = await redis_problem(no_cert)
    assert problem is not None
    assert "client certificates" in problem
    system_trust = acl_settings.model_copy(update={"redis_tls_ca_file": None})
    problem = await redis_problem(system_trust)
    assert problem is not None
    assert "CERTIFICATE_VERIFY_FAILED" in problem
    assert await redis_problem(acl_settings) is None

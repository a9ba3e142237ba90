"""Connection settings, the client factory and the ACL rule (no server needed)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import redis.exceptions
from pydantic import ValidationError
from redis.asyncio.connection import AbstractConnection

from streams.adapters.redis import layout as redis_store
from streams.adapters.redis.client import (
    ACL_COMMANDS,
    acl_rule,
    acl_setuser_line,
    acl_user,
    creditline_connection,
    describe_redis_error,
    redis_client,
)
from streams.settings import Settings

SECRET = "s3cr3t-pw"
#: A URL of each scheme, and the redis-py connection class it gets.
CONNECTION_KINDS = [
    ("redis://127.0.0.1:1/0", aioredis.Connection),
    ("rediss://127.0.0.1:1/0", aioredis.SSLConnection),
]


def test_the_factory_builds_a_cluster_client_only_when_asked() -> None:
    standalone = redis_client(Settings(redis_url="redis://127.0.0.1:1/0"))
    cluster = redis_client(Settings(redis_url="redis://127.0.0.1:1/0", redis_cluster=True))
    assert type(standalone) is aioredis.Redis
    assert type(cluster) is aioredis.RedisCluster


@pytest.mark.parametrize(("url", "base"), CONNECTION_KINDS)
def test_a_cluster_client_connects_every_node_with_creditlines_connection(
    url: str, base: type[AbstractConnection]
) -> None:
    cluster = redis_client(Settings(redis_url=url, redis_cluster=True))
    assert isinstance(cluster, aioredis.RedisCluster)
    kind = creditline_connection(base)
    # Nodes found later are made from these keyword arguments; the startup node exists.
    assert cluster.get_connection_kwargs()["connection_class"] is kind
    assert [node.connection_class for node in cluster.startup_nodes] == [kind]


@pytest.mark.parametrize(("url", "base"), CONNECTION_KINDS)
def test_commands_are_packed_by_hiredis_into_the_bytes_redis_py_packs(
    url: str, base: type[AbstractConnection]
) -> None:
    client = redis_client(Settings(redis_url=url))
    assert isinstance(client, aioredis.Redis)
    pool = client.connection_pool
    assert pool.connection_class is creditline_connection(base)
    assert issubclass(pool.connection_class, base)
    fast, plain = pool.connection_class(), base()  # never connected: packing only
    commands: list[tuple[Any, ...]] = [
        ("EVALSHA", "f" * 40, 2, "creditline:u:1", "k", b"\x00\xff" * 300, 7, 2.5, "é"),
        ("CONFIG GET", "maxmemory"),
        (b"CLIENT SETNAME", "x"),
        ("PING",),
        ("SET", "k", b"v" * 70_000),  # beyond redis-py's buffer cutoff: chunked there
        ("ZADD", "z", 1 / 3, "a", 5e-324, "b", 1e20, "c", -0.0, "d", 2**64, "e", -(2**63), "f"),
        ("SET", memoryview(b"k"), bytearray(b"v")),  # bytes-like kinds hiredis does not take
    ]
    for command in commands:
        assert b"".join(fast.pack_command(*command)) == b"".join(plain.pack_command(*command))
    wrongs: list[Any] = [True, None, [1]]
    for wrong in wrongs:  # redis-py's own error, not hiredis's
        with pytest.raises(redis.exceptions.DataError):
            fast.pack_command("SET", "k", wrong)
    with pytest.raises(UnicodeEncodeError):
        fast.pack_command("SET", "k", "\udcff")


def test_tls_files_need_a_rediss_url_and_a_certificate_needs_its_key(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    with pytest.raises(ValidationError, match="rediss://"):
        Settings(redis_url="redis://127.0.0.1:1/0", redis_tls_ca_file=ca)
    with pytest.raises(ValidationError, match="key file"):
        Settings(redis_url="rediss://127.0.0.1:1/0", redis_tls_cert_file=ca)
    with pytest.raises(ValidationError, match="redis:// or rediss://"):
        Settings(redis_url="http://127.0.0.1:1/0")
    tls = Settings(redis_url="rediss://127.0.0.1:1/0", redis_tls_ca_file=ca)
    pool = redis_client(tls).connection_pool  # type: ignore[union-attr]
    assert pool.connection_kwargs["ssl_ca_certs"] == str(ca)


def test_a_password_never_shows_in_validation_errors_or_reprs() -> None:
    url = f"rediss://creditline:{SECRET}@127.0.0.1:1/0"
    with pytest.raises(ValidationError) as raised:
        Settings(redis_url=url, redis_tls_cert_file=Path("c.pem"))
    assert SECRET not in str(raised.value)
    settings = Settings(redis_url=url)
    assert SECRET not in repr(settings)
    assert SECRET not in settings.redis_url_redacted


def test_redis_errors_are_one_line_without_the_password() -> None:
    settings = Settings(redis_url=f"redis://creditline:{SECRET}@127.0.0.1:1/0")
    wrong = describe_redis_error(settings, redis.exceptions.AuthenticationError("invalid"))
    assert "refused the credentials" in wrong
    leaky = redis.exceptions.ConnectionError(f"Error connecting with {SECRET}\nmore")
    message = describe_redis_error(settings, leaky)
    assert SECRET not in message
    assert "\n" not in message
    assert "creditline:***@127.0.0.1:1" in message


def test_the_acl_rule_confines_the_user_to_its_prefix_and_commands() -> None:
    settings = Settings(redis_url="redis://app:pw@127.0.0.1:1/0", redis_key_prefix="cl")
    rule = acl_rule(settings)
    assert rule[:2] == ["reset", "on"]
    assert "~cl:*" in rule
    assert "-@all" in rule
    assert not any(r.startswith((">", "#", "nopass")) for r in rule)  # no password in it
    assert acl_user(settings) == "app"
    assert acl_user(Settings(redis_url="redis://127.0.0.1:1/0")) == "creditline"
    assert acl_setuser_line(settings).startswith("ACL SETUSER app reset on ~cl:* ")
    assert "pw" not in acl_setuser_line(settings).split()


def test_every_command_of_the_lua_scripts_is_granted() -> None:
    sources = (
        redis_store.APPLY.source,
        redis_store.LOAD.source,
        redis_store.CLEAR_IF_EQUAL.source,
        redis_store.SCHEDULE_POLICY.source,
    )
    called = {m.lower() for s in sources for m in re.findall(r"redis\.call\('(\w+)'", s)}
    assert called == {
        "hget",
        "hset",
        "hmget",
        "hdel",
        "get",
        "set",
        "zrange",
        "zadd",
    }
    assert called <= set(ACL_COMMANDS)

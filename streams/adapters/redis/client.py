"""How creditline reaches Redis: the one client factory, and the ACL rule granting what it uses.

Every Redis client in creditline (worker, CLI, replay, benchmarks, tests) comes from
:func:`redis_client`, so standalone or cluster, TLS and credentials are decided in one place.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, TypeVar, cast
from urllib.parse import unquote, urlsplit

import hiredis
import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.connection import AbstractConnection

from streams.errors import CreditlineError
from streams.settings import Settings

#: Either kind of client: both offer the commands and pipelines the store uses.
RedisClient = aioredis.Redis | aioredis.RedisCluster

#: Short timeouts: an outage must surface quickly, so workers retry and requests get `review`.
SOCKET_TIMEOUT_SECONDS = 2.0
#: Idle connections are checked (PING) before reuse after this long.
HEALTH_CHECK_SECONDS = 10
#: How long a write waits for replicas (``WAIT``'s timeout) with ``REDIS_MIN_REPLICAS``:
#: within the socket timeout, so a missing replica is told apart from an unreachable server.
REPLICA_WAIT_MS = 1000


#: The ACL user when the URL names none.
DEFAULT_ACL_USER = "creditline"

#: Every command creditline sends, by who sends it (the ACL rule grants exactly these).
#: Commands inside Lua scripts are checked against the caller's ACL too, so they are listed.
ACL_COMMANDS: tuple[str, ...] = (
    # the store: scripts by digest, loaded again when a server answers NOSCRIPT
    "evalsha",
    "script|load",
    # the store: plain reads, the decision memory and scan_states
    "hmget",
    "hgetall",
    "set",
    "scan",
    "get",
    # the store: review schedule of each partition (sorted sets)
    "zadd",
    "zrem",
    "zrange",
    # inside the store's Lua scripts
    "hget",
    "hset",
    "hdel",
    # `replay --rebuild`: deleting creditline's keys
    "del",
    # with CREDITLINE_REDIS_MIN_REPLICAS: waiting for replicas after writes
    "wait",
    # health checks of idle connections, `creditline status`
    "ping",
    # a cluster client: slot map, key positions, redirection during resharding
    "cluster|slots",
    "command",
    "asking",
)


def _tls_options(settings: Settings) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if settings.redis_tls_ca_file is not None:
        options["ssl_ca_certs"] = str(settings.redis_tls_ca_file)
    if settings.redis_tls_cert_file is not None:
        options["ssl_certfile"] = str(settings.redis_tls_cert_file)
        options["ssl_keyfile"] = str(settings.redis_tls_key_file)
    return options


def redis_client(settings: Settings) -> RedisClient:
    """A new client (and connection pool) for the configured Redis or Redis Cluster.

    TLS follows the URL scheme (``rediss://``); credentials come from the URL.
    """
    url = settings.redis_url.get_secret_value()
    options: dict[str, Any] = {
        "socket_timeout": SOCKET_TIMEOUT_SECONDS,
        "socket_connect_timeout": SOCKET_TIMEOUT_SECONDS,
        "health_check_interval": HEALTH_CHECK_SECONDS,
        # No CLIENT SETINFO on connect: one command less to grant, no refusals in ACL LOG.
        "driver_info": None,
        **_tls_options(settings),
    }
    if settings.redis_cluster:
        cluster = aioredis.RedisCluster.from_url(url, **options)
        # The cluster client takes no connection class: its nodes share these keyword
        # arguments (the nodes it discovers are made from them), and the startup nodes
        # already exist.
        kind = creditline_connection(cluster.connection_kwargs["connection_class"])
        cluster.connection_kwargs["connection_class"] = kind
        for node in cluster.startup_nodes:
            node.connection_class = kind
        return cluster
    client = aioredis.Redis.from_url(url, **options)
    pool = client.connection_pool
    pool.connection_class = creditline_connection(pool.connection_class)
    return client


class _CreditlineConnection(AbstractConnection):
    """redis-py's connection with two changes: commands are packed by hiredis, and a task
    cancelled while its command is sent stays cancelled."""

    def pack_command(self, *args: Any) -> list[bytes]:
        # hiredis (C) rather than redis-py's asyncio connection's Python packer, which was
        # about 5 % of the fold's CPU: the same bytes, 6-7 times faster. As redis-py does, a
        # command name with a space ("CONFIG GET") is several words.
        head = args[0]
        if isinstance(head, str):
            args = (*head.encode().split(), *args[1:])
        elif b" " in head:
            args = (*head.split(), *args[1:])
        encoder = self.encoder
        if encoder.encoding == "utf-8" and encoder.encoding_errors == "strict":
            try:
                # hiredis encodes str as strict UTF-8 and ints and floats by their repr, as
                # redis-py's encoder does (a Python call per argument: 2 % of the fold). It
                # refuses every other type (bool, None, bytearray): those go through the
                # encoder, for its bytes or its own error.
                return [hiredis.pack_command(args)]
            except TypeError:
                pass
        encoded: tuple[Any, ...] = tuple(map(_hiredis_bytes, map(encoder.encode, args)))
        return [hiredis.pack_command(encoded)]

    async def send_packed_command(
        self, command: bytes | str | Iterable[bytes], check_health: bool = True
    ) -> None:
        task = asyncio.current_task()
        cancels = task.cancelling() if task is not None else 0
        await super().send_packed_command(command, check_health)
        if task is not None and task.cancelling() > cancels:
            # redis-py sends through ``asyncio.wait_for``, which on Python 3.11 returns the
            # result when the send completes just as the task is cancelled, dropping the
            # CancelledError (bpo-42130, fixed in 3.12): the task would carry on as if never
            # cancelled (a test's PING loop ran on for 15 minutes). Deliver it, and drop the
            # connection as redis-py does when a command is interrupted, so its unread reply
            # is never taken for the next command's.
            await self.disconnect(nowait=True)
            raise asyncio.CancelledError


def _hiredis_bytes(encoded: bytes | bytearray | memoryview) -> bytes | memoryview:
    """An encoded argument as hiredis takes it (not a bytearray)."""
    return bytes(encoded) if isinstance(encoded, bytearray) else encoded


_CONNECTIONS: dict[type[AbstractConnection], type[AbstractConnection]] = {}
_Connection = TypeVar("_Connection", bound=AbstractConnection)


def creditline_connection(connection_class: type[_Connection]) -> type[_Connection]:
    """``connection_class`` (plain, TLS or Unix socket) with :class:`_CreditlineConnection`'s
    changes."""
    if connection_class not in _CONNECTIONS:
        name = f"Creditline{connection_class.__name__}"
        _CONNECTIONS[connection_class] = type(name, (_CreditlineConnection, connection_class), {})
    return cast("type[_Connection]", _CONNECTIONS[connection_class])


def acl_user(settings: Settings) -> str:
    """The ACL user creditline logs in as: the URL's user name, else ``creditline``."""
    username = urlsplit(settings.redis_url.get_secret_value()).username
    return unquote(username) if username else DEFAULT_ACL_USER


def acl_rule(settings: Settings) -> list[str]:
    """The ACL rules for creditline's user, without a password (the operator adds one).

    ``reset`` first, so applying it again converges: only creditline's keys, no channels, only
    the commands in :data:`ACL_COMMANDS`.
    """
    return [
        "reset",
        "on",
        f"~{settings.redis_key_prefix}:*",
        "resetchannels",
        "-@all",
        *(f"+{command}" for command in ACL_COMMANDS),
    ]


def acl_setuser_line(settings: Settings) -> str:
    """``ACL SETUSER`` for creditline's user, to paste into redis-cli (add ``>password``)."""
    return " ".join(["ACL", "SETUSER", acl_user(settings), *acl_rule(settings)])


#: What a Redis call may raise when Redis cannot be used (a cluster client wraps causes).
REDIS_ERRORS = (redis.exceptions.RedisError, redis.exceptions.RedisClusterException, OSError)


async def redis_problem(settings: Settings) -> str | None:
    """None when Redis answers PING as the configured user, else why not (one line)."""
    client = redis_client(settings)
    try:
        await client.ping()
    except REDIS_ERRORS as exc:
        return describe_redis_error(settings, exc)
    finally:
        await client.aclose()
    return None


def describe_redis_error(settings: Settings, error: BaseException) -> str:
    """One line saying why Redis could not be used; never the password."""
    if isinstance(error, CreditlineError) and error.__cause__ is not None:
        error = error.__cause__  # the store's translation: the redis-py error says more
    if isinstance(error, redis.exceptions.RedisClusterException) and error.__cause__:
        error = error.__cause__  # "cannot be connected" says less than its cause
    where = f"Redis at {settings.redis_url_redacted}"
    detail = _first_line(error)
    password = urlsplit(settings.redis_url.get_secret_value()).password
    if password:
        detail = detail.replace(password, "***").replace(unquote(password), "***")
    if isinstance(error, redis.exceptions.AuthenticationError):
        what = "refused the credentials (wrong user name or password, or user disabled)"
    elif isinstance(error, redis.exceptions.NoPermissionError):
        what = "denied a command to this user (NOPERM): compare its ACL with `creditline redis-acl`"
    elif isinstance(error, redis.exceptions.ConnectionError | OSError):
        what = f"is not reachable or refused the connection ({detail}){_hint(settings, detail)}"
    else:
        what = f"failed: {type(error).__name__}: {detail}"
    return f"{where} {what}"


def _hint(settings: Settings, detail: str) -> str:
    """What a connection the server dropped (or a TLS alert) most likely means."""
    dropped = "reset by peer" in detail or "closed by server" in detail
    tls = urlsplit(settings.redis_url.get_secret_value()).scheme == "rediss"
    if dropped and not tls:
        return "; if the server requires TLS, use a rediss:// URL"
    no_cert = settings.redis_tls_cert_file is None
    if tls and no_cert and (dropped or "CERTIFICATE_REQUIRED" in detail):
        return "; if the server requires client certificates, set CREDITLINE_REDIS_TLS_CERT_FILE"
    return ""


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__

"""A private Redis primary with replicas, for replication and failover tests.

Servers are :class:`~streams.stack.redis_nodes.RedisServer` processes on free loopback ports
in the test's directory; a replica follows ``--replicaof`` an address (a server, or a proxy in
front of one); a failover is done by hand as a managed service would: the primary killed, a
replica promoted (``REPLICAOF NO ONE``).
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from tests.redis_nodes import LOOPBACK, RedisServer, free_port


def redis_server(directory: Path, *, replica_of: str | None = None) -> RedisServer:
    """A started redis-server (nothing persisted: none is restarted from disk), optionally a
    replica of ``host:port``."""
    port = free_port()
    # No AOF: a replica refuses SIGTERM while it writes its first AOF after a full sync
    # ("Writing initial AOF, can't exit"). A full sync starts at once (by default a primary
    # waits 5 s for more replicas).
    args = ["--port", str(port), "--appendonly", "no", "--save", ""]
    args += ["--repl-diskless-sync-delay", "0"]
    if replica_of is not None:
        host, _, upstream_port = replica_of.rpartition(":")
        # Reconnect quickly after the link comes back.
        args += ["--replicaof", host, upstream_port, "--repl-timeout", "5"]
    server = RedisServer(directory, port, args)
    server.start()
    return server


def url_of(server: RedisServer) -> str:
    return f"redis://{LOOPBACK}:{server.port}/0"


def cli(server: RedisServer, *args: str) -> str:
    """A redis-cli command against one server; its output."""
    result = subprocess.run(
        ["redis-cli", "-h", LOOPBACK, "-p", str(server.port), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stdout.strip()


def info(server: RedisServer, section: str = "replication") -> dict[str, str]:
    """``INFO <section>`` as a dict."""
    fields: dict[str, str] = {}
    for line in cli(server, "info", section).splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def wait_in_sync(primary: RedisServer, replicas: int = 1, timeout: float = 30.0) -> None:
    """Until ``replicas`` replicas are connected and online at the primary's offset."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fields = info(primary)
        offset = fields.get("master_repl_offset")
        online = [v for k, v in fields.items() if k.startswith("slave") and "state=online" in v]
        if len(online) >= replicas and all(f"offset={offset}," in v for v in online):
            return
        time.sleep(0.1)
    raise AssertionError(f"{replicas} replica(s) not in sync: {info(primary)}")


def kill(server: RedisServer) -> None:
    """SIGKILL: no shutdown, nothing flushed or handed over."""
    if server.process is not None and server.process.poll() is None:
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()


def promote(replica: RedisServer) -> None:
    """Make a replica a primary (``REPLICAOF NO ONE``), as a failover does."""
    assert cli(replica, "replicaof", "no", "one") == "OK"
    deadline = time.monotonic() + 10
    while info(replica).get("role") != "master":
        assert time.monotonic() < deadline, "the replica was not promoted"
        time.sleep(0.05)

"""Private ``redis-server`` processes on loopback: single servers and a local Redis Cluster.

Used by the tests (a cluster of 3 masters, a TLS server with ACLs) and usable by hand. Each
server keeps its data, log and cluster state in its own directory; nothing here touches the
development stack's Redis.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from streams.devtools.stack.local import StackError, port_open
from streams.runtime.net import LOOPBACK as LOOPBACK  # re-exported for the harness
from streams.runtime.net import free_loopback_ports


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port nothing listens on right now. To start a process that needs several
    ports, take them from one :func:`free_ports` call instead."""
    return free_ports(1, host)[0]


#: Every port this test process has handed out: one drawn for a process not started yet is
#: not bound, so it could be offered again (a Kafka node got one port for two listeners).
_HANDED_OUT: set[int] = set()

#: The lowest port the harness draws from (clear of the stack's fixed ports, 6379 and 9092).
HARNESS_PORTS_FLOOR = 20000


def harness_port_range(
    ephemeral_floor: int | None = None, worker: str = "", workers: int = 1
) -> range | None:
    """The ports this test process draws from, or None to let the OS choose.

    Ports the OS chooses (``bind(0)``, every outgoing connection's local port) come from the
    kernel's ephemeral range, so between drawing a port there and the process binding it,
    anything on the machine can take it: a worker in CI failed with "address already in use".
    Below that range only explicit binds land, and each xdist worker (``gw0``, ``gw1``...)
    gets its own slice, so the only draws that could collide are this process's own, which
    :data:`_HANDED_OUT` remembers."""
    if ephemeral_floor is None:
        ephemeral_floor = _ephemeral_floor()
    if ephemeral_floor is None:
        return None
    width = (ephemeral_floor - HARNESS_PORTS_FLOOR) // max(workers, 1)
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    if width < 500 or index >= workers:
        return None  # too narrow to share: fall back to the OS's choice
    start = HARNESS_PORTS_FLOOR + index * width
    return range(start, start + width)


def _ephemeral_floor() -> int | None:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


_RANGE = harness_port_range(
    worker=os.environ.get("PYTEST_XDIST_WORKER", ""),
    workers=int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1),
)
#: Where the next draw starts: a different place per run, so a run does not start on ports
#: the last run's processes may still be leaving.
_NEXT = [random.randrange(len(_RANGE)) if _RANGE else 0]


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """``count`` distinct TCP ports nothing listens on right now, none handed out before by
    this process (from :func:`harness_port_range` where the kernel allows)."""
    if _RANGE is None:
        ports = free_loopback_ports(count, host, avoid=_HANDED_OUT)
    else:
        ports = _draw(_RANGE, count, host)
    _HANDED_OUT.update(ports)
    return ports


def _draw(ports: range, count: int, host: str) -> list[int]:
    """Walk ``ports`` from the cursor, keeping each port that binds now; all are held until
    ``count`` are found, so none is taken twice."""
    held: list[socket.socket] = []
    if count <= 0:
        return []
    try:
        for _ in range(len(ports)):
            port = ports[_NEXT[0] % len(ports)]
            _NEXT[0] += 1
            if port in _HANDED_OUT:
                continue
            sock = socket.socket()
            try:
                sock.bind((host, port))
            except OSError:
                sock.close()
                continue
            held.append(sock)
            if len(held) == count:
                return [int(s.getsockname()[1]) for s in held]
        raise StackError(f"no {count} free ports left in {ports.start}-{ports.stop - 1}")
    finally:
        for sock in held:
            sock.close()


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise StackError(f"{name} is not installed: run `make install`.")
    return path


@dataclass
class RedisServer:
    """One ``redis-server`` of ours: ``args`` choose its listeners (``--port``, ``--tls-port``)
    and anything else; ``port`` is where it is ready when it accepts connections."""

    directory: Path
    port: int
    args: Sequence[str] = ()
    host: str = LOOPBACK
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def log(self) -> Path:
        """The server's log file."""
        return self.directory / "redis.log"

    def start(self, timeout: float = 20.0) -> None:
        """Start the server and wait until it accepts connections."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                _binary("redis-server"),
                "--bind",
                self.host,
                "--dir",
                str(self.directory),
                "--daemonize",
                "no",
                "--logfile",
                str(self.log),
                # A user's hash holds the ~0.3-2 KB state and, briefly, a status event: above the
                # default 64-byte value limit it becomes a hashtable, ~700 B per user more.
                "--hash-max-listpack-value",
                "4096",
                *self.args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log.read_text()[-2000:] if self.log.exists() else ""
                raise StackError(f"redis-server exited; see {self.log}:\n{tail}")
            if port_open(self.host, self.port, timeout=0.2):
                return
            time.sleep(0.05)
        raise StackError(f"redis-server did not start within {timeout:.0f}s; see {self.log}")

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (Redis saves what it persists), SIGKILL after ``timeout``."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class LocalRedisCluster:
    """A Redis Cluster of ``masters`` primaries (no replicas) on free loopback ports."""

    directory: Path
    masters: int = 3
    host: str = LOOPBACK
    nodes: list[RedisServer] = field(default_factory=list, repr=False)

    @property
    def url(self) -> str:
        """A seed node's URL (the client discovers the others)."""
        return f"redis://{self.host}:{self.nodes[0].port}/0"

    def start(self, timeout: float = 30.0) -> None:
        """Start the nodes, join them into one cluster and wait for ``cluster_state:ok``."""
        if self.masters < 3:
            raise StackError("a Redis Cluster needs at least 3 masters")
        for index in range(self.masters):
            port, bus_port = free_ports(2, self.host)
            self.nodes.append(
                RedisServer(
                    self.directory / f"node-{index}",
                    port,
                    [
                        "--port",
                        str(port),
                        # The bus port is chosen too: port + 10000 may be taken or out of range.
                        "--cluster-port",
                        str(bus_port),
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "5000",
                        "--appendonly",
                        "yes",
                        "--save",
                        "",
                    ],
                    self.host,
                )
            )
        try:
            for node in self.nodes:
                node.start()
            self._create(timeout)
            self._wait_ok(timeout)
        except BaseException:
            self.stop()
            raise

    def _cli(self, *args: str, timeout: float = 30.0) -> str:
        result = subprocess.run(
            [_binary("redis-cli"), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(f"redis-cli {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
        return result.stdout

    def _create(self, timeout: float) -> None:
        addresses = [f"{self.host}:{node.port}" for node in self.nodes]
        self._cli(
            "--cluster",
            "create",
            *addresses,
            "--cluster-replicas",
            "0",
            "--cluster-yes",
            timeout=timeout,
        )

    def _wait_ok(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = [
                self._cli("-h", self.host, "-p", str(node.port), "cluster", "info")
                for node in self.nodes
            ]
            if all("cluster_state:ok" in state for state in states):
                return
            time.sleep(0.1)
        raise StackError(f"the Redis Cluster is not ok after {timeout:.0f}s")

    def stop(self) -> None:
        """Stop every node (data stays in the directory)."""
        for node in self.nodes:
            node.stop()

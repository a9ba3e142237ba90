"""Start, stop and report a local Kafka broker and Redis server.

Nothing is installed by hand: Kafka's jars are resolved by Maven from
``org.apache.kafka:kafka_2.13`` (plus a Log4j 2 binding) into a cache outside the
repository; Redis is Debian's ``redis-server`` (``make install`` adds it when missing).
Each service is started only when nothing answers on its address already, so ``up`` is
idempotent and leaves an existing stack alone; ``down`` stops only what ``up`` started.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from streams.devtools.stack.kafka import KafkaCluster, KafkaNode
from streams.devtools.stack.process import StackError, port_open, read_pidfile, stop_process_group
from streams.settings import Settings

__all__ = ["LocalStack", "ServiceStatus", "StackError", "port_open"]

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class ServiceStatus:
    """One service as ``creditline status`` reports it."""

    name: str
    address: str
    reachable: bool
    pid: int | None
    managed: bool
    log: Path | None


class LocalStack:
    """The Kafka broker and Redis server of one developer machine or CI run."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.stack_dir.resolve()
        self.kafka_host, self.kafka_port = settings.kafka_endpoints[0]
        self.redis_host, self.redis_port = settings.redis_endpoint

    # ---- paths ----------------------------------------------------------------------------
    def _dir(self, *parts: str) -> Path:
        path = self.root.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def kafka_libs(self) -> Path:
        """Where the broker's jars are cached (outside the repository)."""
        return (
            self.settings.cache_dir.expanduser().resolve()
            / f"kafka-{self.settings.kafka_version}"
            / "libs"
        )

    def _pidfile(self, name: str) -> Path:
        return self._dir("run") / f"{name}.pid"

    def _logfile(self, name: str) -> Path:
        return self._dir("logs") / f"{name}.log"

    def _managed_pid(self, name: str) -> int | None:
        return read_pidfile(self.root / "run" / f"{name}.pid")

    # ---- Kafka ------------------------------------------------------------------------------
    def kafka_jars_cached(self) -> bool:
        """Whether Kafka's jars are already resolved (no Maven run needed)."""
        return (self.kafka_libs.parent / ".complete").exists()

    def ensure_kafka_jars(self) -> Path:
        """Resolve the broker's jars with Maven, once per Kafka version."""
        libs = self.kafka_libs
        marker = libs.parent / ".complete"
        if marker.exists():
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise StackError("Maven (mvn) is needed to fetch Kafka's jars: run `make install`.")
        libs.mkdir(parents=True, exist_ok=True)
        pom = resources.files("streams.devtools.stack").joinpath("kafka-pom.xml")
        with resources.as_file(pom) as pom_path:
            result = subprocess.run(
                [
                    mvn,
                    "-B",
                    "-q",
                    "-f",
                    str(pom_path),
                    "dependency:copy-dependencies",
                    "-DincludeScope=runtime",
                    f"-DoutputDirectory={libs}",
                    f"-Dkafka.version={self.settings.kafka_version}",
                ],
                capture_output=True,
                text=True,
                check=False,
            )
        if result.returncode != 0:
            raise StackError(
                "Maven could not resolve Kafka's jars:\n" + (result.stdout + result.stderr)[-2000:]
            )
        marker.write_text(self.settings.kafka_version)
        return libs

    def kafka_cluster(self, brokers: int = 1) -> KafkaCluster:
        """The local cluster of ``brokers`` nodes: node ``i`` serves clients on the configured
        port + 2(i-1) and its controller on the port after. One node keeps the historical
        layout (``kafka/``, ``kafka.log``, ``kafka.pid``); more live in ``kafka-<n>nodes/``."""
        nodes = [
            KafkaNode(i, self.kafka_port + 2 * (i - 1), self.kafka_port + 2 * (i - 1) + 1)
            for i in range(1, brokers + 1)
        ]
        return KafkaCluster(
            base=self.root / ("kafka" if brokers == 1 else f"kafka-{brokers}nodes"),
            run_dir=self.root / "run",
            log_dir=self.root / "logs",
            libs=self.kafka_libs,
            nodes=nodes,
            host=self.kafka_host,
            heap=self.settings.kafka_heap,
            partitions=self.settings.topic_partitions,
            max_message_bytes=self.settings.max_message_bytes,
            name=(lambda _: "kafka") if brokers == 1 else (lambda i: f"kafka-{i}"),
        )

    def start_kafka(self, brokers: int = 1, timeout: float = 120.0) -> str:
        """Start ``brokers`` nodes unless something already answers; return what was done."""
        if brokers < 1:
            raise StackError("--brokers must be at least 1")
        if port_open(self.kafka_host, self.kafka_port):
            return f"Kafka already reachable at {self.kafka_host}:{self.kafka_port}"
        if self.kafka_host not in _LOOPBACK:
            raise StackError(
                f"Kafka at {self.kafka_host}:{self.kafka_port} is not reachable, and only a "
                "loopback broker can be started locally."
            )
        self.ensure_kafka_jars()
        cluster = self.kafka_cluster(brokers)
        pids = cluster.start(timeout)
        if brokers == 1:
            return f"Kafka started at {cluster.bootstrap_servers} (pid {pids[0]})"
        return (
            f"Kafka started: {brokers} nodes at {cluster.bootstrap_servers} "
            f"(pids {', '.join(map(str, pids))})"
        )

    def kafka_node_names(self) -> list[str]:
        """Names of the Kafka nodes this stack runs: ``kafka``, or ``kafka-1`` … ``kafka-N``."""
        nodes = sorted(
            (p.stem for p in (self.root / "run").glob("kafka-*.pid")),
            key=lambda name: int(name.rpartition("-")[2]),
        )
        return nodes or ["kafka"]

    # ---- Redis ------------------------------------------------------------------------------
    def start_redis(self, timeout: float = 20.0) -> str:
        """Start redis-server unless something already answers; return what was done."""
        if port_open(self.redis_host, self.redis_port):
            return f"Redis already reachable at {self.redis_host}:{self.redis_port}"
        if self.redis_host not in _LOOPBACK:
            raise StackError(
                f"Redis at {self.redis_host}:{self.redis_port} is not reachable, and only a "
                "loopback server can be started locally."
            )
        server = shutil.which("redis-server")
        if server is None:
            raise StackError("redis-server is not installed: run `make install`.")
        data = self._dir("redis")
        logfile = self._logfile("redis")
        args = [
            server,
            "--bind",
            self.redis_host,
            "--port",
            str(self.redis_port),
            "--dir",
            str(data),
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            # The AOF alone: the fold rewrites a user's state on every visit (~4 MB/s of AOF
            # at 6,000 events/s), and with Redis's 64 MB floor the AOF was rewritten every
            # ~12 s on a 50 MB data set, plus an RDB snapshot a minute: each a forked child
            # busy for ~1 s on the cores the worker shares. Durability is the AOF's either way.
            "--save",
            "",
            "--auto-aof-rewrite-min-size",
            "1gb",
            # Commands that stall the server (a slow disk under the append-only file, a fork)
            # are recorded: `redis-cli latency latest` says why a client timed out.
            "--latency-monitor-threshold",
            "100",
            # A user's state hash holds the ~0.3-2 KB state and, briefly, a status event: above
            # the default 64-byte value limit Redis stores it as a hashtable, ~700 B per user more.
            "--hash-max-listpack-value",
            "4096",
            "--logfile",
            str(logfile),
        ]
        process = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._pidfile("redis").write_text(str(process.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                tail = logfile.read_text()[-2000:] if logfile.exists() else ""
                raise StackError(f"redis-server exited; see {logfile}:\n{tail}")
            if port_open(self.redis_host, self.redis_port):
                return f"Redis started at {self.redis_host}:{self.redis_port} (pid {process.pid})"
            time.sleep(0.1)
        raise StackError(f"Redis did not start within {timeout:.0f}s; see {logfile}")

    # ---- lifecycle ------------------------------------------------------------------------
    def stop(self, name: str, timeout: float = 30.0) -> str:
        """Stop a service this stack started (SIGTERM, then SIGKILL after ``timeout``)."""
        pid = self._managed_pid(name)
        pidfile = self.root / "run" / f"{name}.pid"
        if pid is None:
            pidfile.unlink(missing_ok=True)
            return f"{name}: not started by creditline"
        stop_process_group(pid, timeout)
        pidfile.unlink(missing_ok=True)
        return f"{name}: stopped (pid {pid})"

    def stop_kafka(self, timeout: float = 30.0) -> list[str]:
        """Stop every Kafka node this stack started."""
        return [self.stop(name, timeout) for name in self.kafka_node_names()]

    def _kafka_address(self, name: str) -> str:
        index = int(name.rpartition("-")[2]) if "-" in name else 1
        return f"{self.kafka_host}:{self.kafka_port + 2 * (index - 1)}"

    def status(self) -> list[ServiceStatus]:
        """Every service: reachable or not, and whether this stack manages it."""
        services = []
        for name in self.kafka_node_names():
            address = self._kafka_address(name)
            host, _, port = address.rpartition(":")
            pid = self._managed_pid(name)
            services.append(
                ServiceStatus(
                    name,
                    address,
                    port_open(host, int(port)),
                    pid,
                    pid is not None,
                    self.root / "logs" / f"{name}.log",
                )
            )
        redis_pid = self._managed_pid("redis")
        services.append(
            ServiceStatus(
                "redis",
                f"{self.redis_host}:{self.redis_port}",
                port_open(self.redis_host, self.redis_port),
                redis_pid,
                redis_pid is not None,
                self.root / "logs" / "redis.log",
            )
        )
        return services

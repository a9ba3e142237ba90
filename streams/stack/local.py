"""Start, stop and report a local Kafka broker and Redis server.

Nothing is installed by hand: Kafka's jars are resolved by Maven from
``org.apache.kafka:kafka_2.13`` (plus a Log4j 2 binding) into a cache outside the
repository; Redis is Debian's ``redis-server`` (``make install`` adds it when missing).
Each service is started only when nothing answers on its address already, so ``up`` is
idempotent and leaves an existing stack alone; ``down`` stops only what ``up`` started.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from streams.settings import Settings

_LOOPBACK = ("127.0.0.1", "localhost", "::1")
KAFKA_READY = "Kafka Server started"
KAFKA_FATAL = "Exiting Kafka due to fatal exception"


class StackError(RuntimeError):
    """The local stack could not be brought up; the message says what to do."""


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
        self.controller_port = self.kafka_port + 1
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
        pidfile = self.root / "run" / f"{name}.pid"
        if not pidfile.exists():
            return None
        try:
            pid = int(pidfile.read_text().strip())
        except ValueError:
            return None
        return pid if _pid_alive(pid) else None

    # ---- Kafka ------------------------------------------------------------------------------
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
        pom = resources.files("streams.stack").joinpath("kafka-pom.xml")
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

    def _kafka_properties(self) -> Path:
        data = self._dir("kafka", "data")
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{self.kafka_host}:{self.controller_port}",
            "listeners": (
                f"PLAINTEXT://{self.kafka_host}:{self.kafka_port},"
                f"CONTROLLER://{self.kafka_host}:{self.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://{self.kafka_host}:{self.kafka_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(data),
            "num.partitions": str(self.settings.topic_partitions),
            # A single node cannot hold three replicas of the internal topics.
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "12",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "log.cleaner.dedupe.buffer.size": str(8 * 1024 * 1024),
            "message.max.bytes": str(self.settings.max_message_bytes + 1024 * 1024),
            "auto.create.topics.enable": "false",
        }
        path = self._dir("kafka") / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        log4j = self._dir("kafka") / "log4j2.properties"
        log4j.write_text(
            "status = warn\n"
            "appender.out.type = Console\n"
            "appender.out.name = OUT\n"
            "appender.out.layout.type = PatternLayout\n"
            "appender.out.layout.pattern = [%d] %p %m (%c)%n\n"
            "rootLogger.level = INFO\n"
            "rootLogger.appenderRef.out.ref = OUT\n"
            "logger.kafka.name = kafka\nlogger.kafka.level = INFO\n"
            "logger.state.name = state.change.logger\nlogger.state.level = WARN\n"
            "logger.cleaner.name = kafka.log.LogCleaner\nlogger.cleaner.level = WARN\n"
        )
        return path

    def _java(self) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise StackError("Java 17+ is needed to run Kafka: install a JDK (see README).")
        log4j = self.root / "kafka" / "log4j2.properties"
        return [
            java,
            f"-Xmx{self.settings.kafka_heap}",
            f"-Xms{self.settings.kafka_heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            f"-Dkafka.logs.dir={self._dir('logs')}",
            "-cp",
            f"{self.kafka_libs}/*",
        ]

    def _format_kafka_storage(self, properties: Path) -> None:
        cluster_file = self._dir("kafka") / "cluster.id"
        if not cluster_file.exists():
            # The id is persisted: formatting again with another id would fail.
            cluster_file.write_text(uuid.uuid4().hex[:22])
        cluster_id = cluster_file.read_text().strip()
        result = subprocess.run(
            [
                *self._java(),
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id,
                "-c",
                str(properties),
                "-g",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise StackError("formatting Kafka's storage failed:\n" + result.stdout + result.stderr)

    def start_kafka(self, timeout: float = 90.0) -> str:
        """Start the broker unless something already answers; return what was done."""
        if port_open(self.kafka_host, self.kafka_port):
            return f"Kafka already reachable at {self.kafka_host}:{self.kafka_port}"
        if self.kafka_host not in _LOOPBACK:
            raise StackError(
                f"Kafka at {self.kafka_host}:{self.kafka_port} is not reachable, and only a "
                "loopback broker can be started locally."
            )
        self.ensure_kafka_jars()
        properties = self._kafka_properties()
        self._format_kafka_storage(properties)
        logfile = self._logfile("kafka")
        offset = logfile.stat().st_size if logfile.exists() else 0
        with logfile.open("ab") as out:
            process = subprocess.Popen(
                [*self._java(), "kafka.Kafka", str(properties)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._pidfile("kafka").write_text(str(process.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with logfile.open("rb") as log:
                log.seek(offset)
                text = log.read().decode(errors="replace")
            if KAFKA_FATAL in text or process.poll() is not None:
                raise StackError(f"Kafka failed to start; see {logfile}:\n{text[-3000:]}")
            if KAFKA_READY in text and port_open(self.kafka_host, self.kafka_port):
                return f"Kafka started at {self.kafka_host}:{self.kafka_port} (pid {process.pid})"
            time.sleep(0.25)
        raise StackError(f"Kafka did not start within {timeout:.0f}s; see {logfile}")

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
            "--save",
            "60 1000",
            # Dedup fingerprints are 64-bit integers: keep sets in the compact intset form.
            "--set-max-intset-entries",
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
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _pid_alive(pid):
            time.sleep(0.2)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
        if _pid_alive(pid):
            os.killpg(pid, signal.SIGKILL)
        pidfile.unlink(missing_ok=True)
        return f"{name}: stopped (pid {pid})"

    def status(self) -> list[ServiceStatus]:
        """Both services: reachable or not, and whether this stack manages them."""
        kafka_pid = self._managed_pid("kafka")
        redis_pid = self._managed_pid("redis")
        return [
            ServiceStatus(
                "kafka",
                f"{self.kafka_host}:{self.kafka_port}",
                port_open(self.kafka_host, self.kafka_port),
                kafka_pid,
                kafka_pid is not None,
                self.root / "logs" / "kafka.log",
            ),
            ServiceStatus(
                "redis",
                f"{self.redis_host}:{self.redis_port}",
                port_open(self.redis_host, self.redis_port),
                redis_pid,
                redis_pid is not None,
                self.root / "logs" / "redis.log",
            ),
        ]

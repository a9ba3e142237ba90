"""The worker as a real process (``creditline worker``) on isolated topics."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from streams.adapters.kafka.admin import ensure_topics
from streams.adapters.kafka.client import client_options
from streams.devtools.stack import LocalStack
from streams.devtools.stack.kafka import BrokerTls, KafkaCluster, KafkaNode
from streams.settings import ENV_PREFIX, Settings
from tests.conftest import cleanup, isolated
from tests.redis_nodes import free_port as free_port  # re-exported for the tests
from tests.redis_nodes import free_ports


def private_kafka(root: Path, nodes: int, tls: BrokerTls | None = None) -> KafkaCluster:
    """A Kafka cluster of the test's own: ``nodes`` nodes on free loopback ports, data in
    ``root``, jars from the local stack's cache. Call ``start()`` and, always, ``stop()``."""
    libs = LocalStack(Settings()).ensure_kafka_jars()
    ports = free_ports(2 * nodes)  # one call: ports taken one by one can repeat
    return KafkaCluster(
        base=root / "kafka",
        run_dir=root / "run",
        log_dir=root / "logs",
        libs=libs,
        nodes=[KafkaNode(i, ports[2 * i - 2], ports[2 * i - 1]) for i in range(1, nodes + 1)],
        heap="384m",
        tls=tls,
    )


async def await_group_coordinators(settings: Settings, timeout: float = 180.0) -> None:
    """Wait until each of the worker's consumer groups has a coordinator.

    A new cluster creates its offsets topic on the first group request; with three
    replicas on a loaded machine that can outlast the worker's own start-up wait
    (``KAFKA_REQUEST_TIMEOUT_SECONDS``), which then exits, rightly, with an error.
    """
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    deadline = time.monotonic() + timeout
    try:
        for group in settings.consumer_groups:
            while True:
                try:
                    await admin.find_coordinator(group)
                    break
                except KafkaError as exc:
                    if not exc.retriable or time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.5)
    finally:
        await admin.close()


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a worker process these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    for name, value in settings.model_dump().items():
        if value is None:
            continue  # unset stays unset
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"{ENV_PREFIX}{name.upper()}"] = str(value)
    return env


def creditline(
    settings: Settings, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run a ``creditline`` command with these settings (no terminal: standard input is
    empty); its exit code and output."""
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=settings_env(settings),
        timeout=timeout,
        check=False,
    )


def worker_until_exit(settings: Settings, timeout: float = 120) -> str:
    """Run ``creditline worker`` expecting it to stop by itself; its exit code and output."""
    try:
        result = subprocess.run(
            [sys.executable, "-m", "streams.cli", "worker"],
            capture_output=True,
            text=True,
            env=settings_env(settings),
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        # Say where it hung: the exception's own text shows a few lines of the log at most.
        err = exc.stderr or b""
        log = err.decode(errors="replace") if isinstance(err, bytes) else err
        raise AssertionError(
            f"the worker did not stop in {timeout:.0f} s:\n{log[-6000:]}"
        ) from None
    assert result.returncode != 0, "the worker was expected to fail"
    return result.stdout + result.stderr


#: A sample's labels, sorted: how :meth:`WorkerProcess.samples` keys a metric's series.
Labels = tuple[tuple[str, str], ...]


class WorkerProcess:
    """A running ``creditline worker``: its log, its /metrics, and ways to stop it."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def launch(self) -> subprocess.Popen[bytes]:
        """Start the worker's process and return at once (:meth:`start` waits for Ready)."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "worker"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=settings_env(self.settings),
            )
        return self.process

    def start(self, timeout: float = 90.0) -> None:
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.process = self.launch()
        # The worker's own line: its fold process (forked, same log) says Ready too, and
        # may say it first, before the worker's /healthz and /metrics listen.
        ready = f"[{self.process.pid}] [INFO] [^Worker]: Ready"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_bytes()[offset:].decode(errors="replace")
            if ready in text:
                return
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited:\n{text[-4000:]}")
            time.sleep(0.2)
        raise AssertionError(f"worker not ready after {timeout}s:\n{self.log()[-4000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 60.0) -> int:
        """Graceful stop (SIGTERM); returns the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL: no chance to commit or clean up."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def metrics_text(self, url: str | None = None) -> str:
        """The worker's /metrics page (or the page at ``url``: one fold's own)."""
        url = url or f"http://127.0.0.1:{self.settings.web_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())

    def samples(self, url: str | None = None) -> dict[str, dict[Labels, float]]:
        """Every sample of /metrics (or of the page at ``url``): name → sorted labels → value."""
        result: dict[str, dict[Labels, float]] = defaultdict(dict)
        for family in text_string_to_metric_families(self.metrics_text(url)):
            for sample in family.samples:
                result[sample.name][tuple(sorted(sample.labels.items()))] = sample.value
        return result

    def health(self) -> tuple[int, dict[str, Any]]:
        """The worker's /healthz: its status code (503 while a fold is stopped) and body."""
        url = f"http://127.0.0.1:{self.settings.web_port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def fold_pages(self) -> list[str]:
        """The /metrics addresses of the worker's fold processes (on its /healthz); none when
        it folds in its own process."""
        _, body = self.health()
        return [str(fold["metrics"]) for fold in body.get("folds", [])]

    def gauge_per_fold(self, name: str) -> list[float]:
        """A label-less gauge as each fold process shows it on its own page (the worker's page
        when it has no fold processes): the worker's page merges them into one."""
        pages: list[str | None] = [*self.fold_pages()] or [None]
        return [sum(self.samples(url).get(name, {}).values()) for url in pages]

    def gauge_max(self, name: str) -> float:
        """The largest sample of a gauge (a process's own, in a merged exposition); 0 if none."""
        return max(self.samples().get(name, {}).values(), default=0.0)

    def counter(self, name: str, **labels: str) -> float:
        """Sum of a counter's samples whose labels include ``labels``."""
        total = 0.0
        for key, value in self.samples().get(name, {}).items():
            if set(labels.items()) <= set(key):
                total += value
        return total


async def post_decision(worker: WorkerProcess, doc: dict[str, Any], timeout: float = 60) -> int:
    """POST a loan request to a worker's HTTP decision API once it says it is ready; the
    status of the answer."""
    import json

    import aiohttp

    deadline = time.monotonic() + timeout
    while "decision API ready" not in worker.log():
        assert time.monotonic() < deadline, "the decision API did not get ready"
        await asyncio.sleep(0.2)
    url = f"http://127.0.0.1:{worker.settings.web_port}/v1/decisions"
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
        session.post(url, data=json.dumps(doc), headers={"Content-Type": "application/json"}) as r,
    ):
        return r.status


@pytest.fixture
def worker_settings(base_settings: Settings) -> Settings:
    """Isolated settings with 12 partitions (the default) and a free web port."""
    return isolated(base_settings, partitions=12, web_port=free_port(), log_level="info")


@contextlib.asynccontextmanager
async def running_worker(settings: Settings, log_path: Path) -> AsyncIterator[WorkerProcess]:
    """A started worker on the settings' topics (created first); stopped and cleaned up after."""
    await ensure_topics(settings)
    process = WorkerProcess(settings, log_path)
    process.start()
    try:
        yield process
    finally:
        code = process.stop()
        await cleanup(settings)
        assert "Traceback" not in process.log() or code == 0, process.log()[-4000:]


@pytest.fixture
async def worker(worker_settings: Settings, tmp_path: Path) -> AsyncIterator[WorkerProcess]:
    """A started worker on its own topics; stopped and cleaned up afterwards."""
    async with running_worker(worker_settings, tmp_path / "worker.log") as process:
        yield process


class PrivateRedis:
    """A redis-server of the test's own (free port, data in a temp dir), to stop and restart."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import shutil

        server = shutil.which("redis-server")
        assert server is not None, "redis-server is not installed"
        self.process = subprocess.Popen(
            [
                server,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.directory),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--logfile",
                str(self.directory / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("private redis-server did not start")

    def stop(self) -> None:
        """Graceful shutdown: the data stays in the append-only file."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A started private Redis; stopped afterwards."""
    redis_dir = tmp_path / "redis"
    redis_dir.mkdir()
    server = PrivateRedis(redis_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


#: creditline's SCRAM user on the TLS broker, and its password (a fresh canary per run).
APP_USER = "creditline"
APP_PASSWORD = "canary-kafka-" + secrets.token_urlsafe(18)


def write_broker_pems(ca: trustme.CA, directory: Path) -> tuple[Path, Path]:
    """The broker's PEM keystore (PKCS#8 key + chain, as Kafka wants) and truststore."""
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    key = load_pem_private_key(leaf.private_key_pem.bytes(), password=None)
    keystore = directory / "broker-keystore.pem"
    keystore.write_bytes(
        key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        + b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
    )
    truststore = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(truststore))
    return keystore, truststore


@pytest.fixture(scope="session")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[KafkaCluster, Path]]:
    """One node with a SASL_SSL listener only; yields it and the CA file clients trust."""
    root = tmp_path_factory.mktemp("tls")
    keystore, truststore = write_broker_pems(trustme.CA(), root)
    tls = BrokerTls(
        keystore=keystore,
        truststore=truststore,
        users={
            "broker": SecretStr(secrets.token_urlsafe(24)),
            APP_USER: SecretStr(APP_PASSWORD),
        },
        inter_broker_user="broker",
    )
    kafka = private_kafka(root, nodes=1, tls=tls)
    try:
        kafka.start()
        yield kafka, truststore
    finally:
        kafka.stop()

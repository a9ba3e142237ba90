"""A local Apache Kafka of N combined broker+controller nodes (KRaft), from Maven jars.

``node_properties`` is pure: it says how one node is configured. :class:`KafkaCluster`
formats storage, starts, kills and stops the nodes. One node is the development broker of
``creditline up``; three nodes give replication factor 3 with ``min.insync.replicas=2``.

With :class:`BrokerTls`, clients get a ``SASL_SSL`` listener (PEM key and certificates,
SCRAM-SHA-512 users created at format time) and nothing else: brokers talk to each other on
that listener too, authenticated as their own SCRAM user, so no unauthenticated port serves
data. Only the KRaft controller listener stays PLAINTEXT, bound to loopback: SCRAM
credentials live in the metadata log the controllers serve, so they cannot protect it.
``BrokerTls(authorize=True)`` also turns Kafka's ACL authorizer on (nothing is allowed
without an ACL, except to super users).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from streams.devtools.stack.process import StackError, port_open, read_pidfile, stop_process_group

KAFKA_READY = "Kafka Server started"
KAFKA_FATAL = "Exiting Kafka due to fatal exception"
SCRAM_MECHANISM = "SCRAM-SHA-512"
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
#: Who connects to the PLAINTEXT controller listener: brokers registering and heartbeating
#: (and voters fetching the metadata log) arrive there unauthenticated, and the controller
#: checks ClusterAction on the cluster for each such request. Without this super user a
#: combined node never registers its own broker and never reports itself started; ACLs
#: cannot grant it either, since they live in the metadata log that needs the quorum first.
#: Safe here because that listener is bound to loopback and serves only controller APIs.
CONTROLLER_PRINCIPAL = "User:ANONYMOUS"

LOG4J2 = (
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


@dataclass(frozen=True)
class KafkaNode:
    """One combined broker+controller: its id and loopback ports."""

    node_id: int
    client_port: int
    controller_port: int


@dataclass(frozen=True)
class BrokerTls:
    """A SASL_SSL listener: PEM files and the SCRAM-SHA-512 users created at format time."""

    #: PEM file with the broker's PKCS#8 private key followed by its certificate chain.
    keystore: Path
    #: PEM file with the CA certificates the brokers trust (for each other).
    truststore: Path
    users: Mapping[str, SecretStr]
    #: The user brokers authenticate as to each other (one of ``users``).
    inter_broker_user: str
    #: Run the StandardAuthorizer: a client may do only what an ACL allows it.
    authorize: bool = False
    #: Users allowed everything besides the inter-broker user (e.g. an ACL administrator).
    super_users: tuple[str, ...] = ()


def super_users(tls: BrokerTls) -> list[str]:
    """The ``super.users`` principals of an authorizing broker."""
    users = [tls.inter_broker_user, *tls.super_users]
    return [*(f"User:{name}" for name in users), CONTROLLER_PRINCIPAL]


def replication_for(nodes: int) -> tuple[int, int]:
    """Replication factor and min.insync.replicas for a cluster of ``nodes``: 3 and 2 from
    three nodes on (one node may fail without refusing acks=all writes), 1 and 1 alone."""
    factor = min(3, nodes)
    return factor, 2 if factor >= 3 else 1


def node_properties(
    node: KafkaNode,
    nodes: Sequence[KafkaNode],
    *,
    host: str,
    data_dir: Path,
    partitions: int,
    max_message_bytes: int,
    tls: BrokerTls | None = None,
) -> dict[str, str]:
    """The server.properties of one node of the cluster ``nodes``."""
    listener = "SASL_SSL" if tls else "PLAINTEXT"
    factor, min_isr = replication_for(len(nodes))
    props = {
        "process.roles": "broker,controller",
        "node.id": str(node.node_id),
        # Static voters: every node knows the quorum from its configuration.
        "controller.quorum.voters": ",".join(
            f"{n.node_id}@{host}:{n.controller_port}" for n in nodes
        ),
        "listeners": f"{listener}://{host}:{node.client_port},CONTROLLER://{host}:{node.controller_port}",
        "advertised.listeners": f"{listener}://{host}:{node.client_port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": listener,
        "listener.security.protocol.map": f"CONTROLLER:PLAINTEXT,{listener}:{listener}",
        "log.dirs": str(data_dir),
        "num.partitions": str(partitions),
        "default.replication.factor": str(factor),
        "min.insync.replicas": str(min_isr),
        "offsets.topic.replication.factor": str(factor),
        "offsets.topic.num.partitions": "12",
        "transaction.state.log.replication.factor": str(factor),
        "transaction.state.log.min.isr": str(min_isr),
        "share.coordinator.state.topic.replication.factor": str(factor),
        "share.coordinator.state.topic.min.isr": str(min_isr),
        # An out-of-sync replica never becomes leader: that would drop acknowledged records.
        "unclean.leader.election.enable": "false",
        "group.initial.rebalance.delay.ms": "0",
        "log.cleaner.dedupe.buffer.size": str(8 * 1024 * 1024),
        "message.max.bytes": str(max_message_bytes + 1024 * 1024),
        "auto.create.topics.enable": "false",
    }
    if len(nodes) > 1:
        # A killed node is fenced (and its partitions get new leaders) within ~4 s, not 9 s.
        props["broker.heartbeat.interval.ms"] = "1000"
        props["broker.session.timeout.ms"] = "4000"
    if tls is not None:
        password = tls.users[tls.inter_broker_user].get_secret_value()
        props |= {
            "sasl.enabled.mechanisms": SCRAM_MECHANISM,
            "sasl.mechanism.inter.broker.protocol": SCRAM_MECHANISM,
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required "
                f'username="{tls.inter_broker_user}" password="{password}";'
            ),
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(tls.keystore),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(tls.truststore),
            "ssl.client.auth": "none",
        }
        if tls.authorize:
            props |= {
                "authorizer.class.name": AUTHORIZER,
                "allow.everyone.if.no.acl.found": "false",
                "super.users": ";".join(super_users(tls)),
            }
    return props


def scram_arguments(tls: BrokerTls | None) -> list[str]:
    """``--add-scram`` arguments of the storage formatter for every user."""
    if tls is None:
        return []
    args: list[str] = []
    for name, password in sorted(tls.users.items()):
        args += [
            "--add-scram",
            f"{SCRAM_MECHANISM}=[name={name},password={password.get_secret_value()}]",
        ]
    return args


class KafkaCluster:
    """Nodes of one local KRaft cluster: same cluster id, own ports, data, log and pid file.

    ``base`` holds the cluster id and configuration; with one node its data is ``base/data``,
    with more ``base/node-<id>/data``. ``name(node_id)`` names each node's log and pid file.
    """

    def __init__(
        self,
        *,
        base: Path,
        run_dir: Path,
        log_dir: Path,
        libs: Path,
        nodes: Sequence[KafkaNode],
        host: str = "127.0.0.1",
        heap: str = "512m",
        partitions: int = 12,
        max_message_bytes: int = 8 * 1024 * 1024,
        tls: BrokerTls | None = None,
        name: Callable[[int], str] | None = None,
    ) -> None:
        self.base = base
        self.run_dir = run_dir
        self.log_dir = log_dir
        self.libs = libs
        self.nodes = list(nodes)
        self.host = host
        self.heap = heap
        self.partitions = partitions
        self.max_message_bytes = max_message_bytes
        self.tls = tls
        self.name = name or (lambda node_id: f"kafka-{node_id}")

    # ---- layout -------------------------------------------------------------------------
    @property
    def bootstrap_servers(self) -> str:
        """Every node's client address, comma separated."""
        return ",".join(f"{self.host}:{n.client_port}" for n in self.nodes)

    def node(self, node_id: int) -> KafkaNode:
        """The node with this id."""
        return next(n for n in self.nodes if n.node_id == node_id)

    def node_dir(self, node_id: int) -> Path:
        """Configuration and data of one node."""
        return self.base if len(self.nodes) == 1 else self.base / f"node-{node_id}"

    def logfile(self, node_id: int) -> Path:
        """The node's console log."""
        return self.log_dir / f"{self.name(node_id)}.log"

    def pidfile(self, node_id: int) -> Path:
        """Where the node's pid is kept while it runs."""
        return self.run_dir / f"{self.name(node_id)}.pid"

    def pid(self, node_id: int) -> int | None:
        """The running node's pid, if it runs."""
        return read_pidfile(self.pidfile(node_id))

    # ---- configuration ------------------------------------------------------------------
    def _java(self) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise StackError("Java 17+ is needed to run Kafka: install a JDK (see README).")
        return [
            java,
            f"-Xmx{self.heap}",
            f"-Xms{self.heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.base / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.log_dir}",
            "-cp",
            f"{self.libs}/*",
        ]

    def _cluster_id(self) -> str:
        cluster_file = self.base / "cluster.id"
        if not cluster_file.exists():
            # The id is persisted: formatting again with another id would fail.
            cluster_file.write_text(uuid.uuid4().hex[:22])
        return cluster_file.read_text().strip()

    def prepare(self) -> None:
        """Write every node's configuration and format its storage (once)."""
        for directory in (self.base, self.run_dir, self.log_dir):
            directory.mkdir(parents=True, exist_ok=True)
        (self.base / "log4j2.properties").write_text(LOG4J2)
        cluster_id = self._cluster_id()
        for node in self.nodes:
            directory = self.node_dir(node.node_id)
            data = directory / "data"
            data.mkdir(parents=True, exist_ok=True)
            props = node_properties(
                node,
                self.nodes,
                host=self.host,
                data_dir=data,
                partitions=self.partitions,
                max_message_bytes=self.max_message_bytes,
                tls=self.tls,
            )
            path = directory / "server.properties"
            # It may hold the inter-broker password: readable by its owner only.
            path.touch(mode=0o600)
            path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
            result = subprocess.run(
                [
                    *self._java(),
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    cluster_id,
                    "-c",
                    str(path),
                    "-g",
                    *scram_arguments(self.tls),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                raise StackError(
                    f"formatting Kafka's storage failed:\n{result.stdout}{result.stderr}"
                )

    # ---- lifecycle ----------------------------------------------------------------------
    def _launch(self, node_id: int) -> tuple[subprocess.Popen[bytes], int]:
        logfile = self.logfile(node_id)
        offset = logfile.stat().st_size if logfile.exists() else 0
        with logfile.open("ab") as out:
            process = subprocess.Popen(
                [*self._java(), "kafka.Kafka", str(self.node_dir(node_id) / "server.properties")],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pidfile(node_id).write_text(str(process.pid))
        return process, offset

    def _await_ready(
        self, node_id: int, process: subprocess.Popen[bytes], offset: int, deadline: float
    ) -> None:
        logfile = self.logfile(node_id)
        port = self.node(node_id).client_port
        while time.monotonic() < deadline:
            with logfile.open("rb") as log:
                log.seek(offset)
                text = log.read().decode(errors="replace")
            if KAFKA_FATAL in text or process.poll() is not None:
                raise StackError(f"Kafka failed to start; see {logfile}:\n{text[-3000:]}")
            if KAFKA_READY in text and port_open(self.host, port):
                return
            time.sleep(0.25)
        raise StackError(f"Kafka did not start in time; see {logfile}")

    def start(self, timeout: float = 120.0) -> list[int]:
        """Format and start every node that is not running; returns the started pids.

        All nodes are launched before any is awaited: a node's broker waits for a
        controller quorum (a majority of the voters) before it reports itself started.
        """
        self.prepare()
        launched = [
            (node.node_id, *self._launch(node.node_id))
            for node in self.nodes
            if self.pid(node.node_id) is None
        ]
        deadline = time.monotonic() + timeout
        for node_id, process, offset in launched:
            self._await_ready(node_id, process, offset, deadline)
        return [process.pid for _, process, _ in launched]

    def start_node(self, node_id: int, timeout: float = 90.0) -> int:
        """Start one (stopped or killed) node and wait until it serves; returns its pid."""
        process, offset = self._launch(node_id)
        self._await_ready(node_id, process, offset, time.monotonic() + timeout)
        return process.pid

    def kill_node(self, node_id: int) -> None:
        """SIGKILL one node: no controlled shutdown, no flush."""
        pid = self.pid(node_id)
        if pid is not None:
            stop_process_group(pid, timeout=0, sig=signal.SIGKILL)
        self.pidfile(node_id).unlink(missing_ok=True)

    def stop_node(self, node_id: int, timeout: float = 30.0) -> int | None:
        """Stop one node gracefully (SIGTERM, SIGKILL after ``timeout``); returns its pid."""
        pid = self.pid(node_id)
        if pid is not None:
            stop_process_group(pid, timeout)
        self.pidfile(node_id).unlink(missing_ok=True)
        return pid

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every node (all at once, so none waits for a departed quorum)."""
        pids = [pid for node in self.nodes if (pid := self.pid(node.node_id)) is not None]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
        for node in self.nodes:
            self.stop_node(node.node_id, timeout)

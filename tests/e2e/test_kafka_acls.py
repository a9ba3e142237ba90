"""Kafka ACLs: a broker that runs Kafka's StandardAuthorizer (nothing allowed without an ACL)
and exactly the ACLs of ``streams.devtools.kafka_acls`` — the ones ``creditline kafka-acls``
prints and docs/operations.md lists. The worker and the operator commands work with them; the
worker's principal is refused everything else; a worker missing one ACL stops with one line
naming it."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pytest
import trustme
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAuthorizationFailedError
from pydantic import SecretStr

from streams.adapters.kafka.client import client_options, producer_options
from streams.devtools.kafka_acls import AclRule, operator_rules, worker_rules
from streams.devtools.stack.kafka import BrokerTls, KafkaCluster
from streams.settings import Settings
from streams.topics import Topics
from tests.builders import encode, request_doc, spending_doc
from tests.conftest import cleanup, isolated
from tests.e2e.conftest import (
    WorkerProcess,
    creditline,
    free_port,
    post_decision,
    private_kafka,
    worker_until_exit,
    write_broker_pems,
)
from tests.support import produce, wait_applied, wait_for

ADMIN, WORKER, OPERATOR, PARTIAL = (
    "kafka-admin",
    "creditline",
    "creditline-ops",
    "creditline-lacking",
)
PASSWORDS = {
    name: secrets.token_urlsafe(18) for name in ("broker", ADMIN, WORKER, OPERATOR, PARTIAL)
}
KAFKA_ACLS_JAVA = Path(__file__).with_name("KafkaAcls.java")
#: Kafka's TOPIC_AUTHORIZATION_FAILED error code.
TOPIC_AUTHORIZATION_FAILED = 29


@dataclass(frozen=True)
class AclBroker:
    """The authorizing broker and settings for each of its users on one set of topics."""

    kafka: KafkaCluster
    ca_file: Path
    admin: Settings
    worker: Settings
    operator: Settings
    #: Another app (own topics and groups) whose user lacks one of the worker's ACLs.
    lacking: Settings


def as_user(settings: Settings, user: str) -> Settings:
    """The same settings logging in as ``user``."""
    return settings.model_copy(
        update={"kafka_sasl_username": user, "kafka_sasl_password": SecretStr(PASSWORDS[user])}
    )


def grant(kafka: KafkaCluster, ca_file: Path, rules: Iterable[AclRule]) -> None:
    """Create the rules' ACL bindings with Kafka's own Admin client, as the super user."""
    java = shutil.which("java")
    assert java is not None
    lines = ["\t".join(binding) for rule in rules for binding in rule.bindings()]
    result = subprocess.run(
        [
            java,
            "-cp",
            f"{kafka.libs}/*",
            str(KAFKA_ACLS_JAVA),
            kafka.bootstrap_servers,
            str(ca_file),
        ],
        input="\n".join(lines),
        capture_output=True,
        text=True,
        env={**os.environ, "KAFKA_ACL_USER": ADMIN, "KAFKA_ACL_PASSWORD": PASSWORDS[ADMIN]},
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"created {len(lines)} ACL bindings" in result.stdout


@pytest.fixture(scope="module")
def acl_broker(
    base_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AclBroker]:
    """An authorizing SASL_SSL broker with the documented ACLs granted; topics created by
    the operator (``creditline topics``) and, for the lacking app, by the admin."""
    root = tmp_path_factory.mktemp("acl")
    keystore, truststore = write_broker_pems(trustme.CA(), root)
    tls = BrokerTls(
        keystore=keystore,
        truststore=truststore,
        users={name: SecretStr(password) for name, password in PASSWORDS.items()},
        inter_broker_user="broker",
        authorize=True,
        super_users=(ADMIN,),
    )
    kafka = private_kafka(root, nodes=1, tls=tls)
    secure: dict[str, object] = {
        "kafka_bootstrap_servers": kafka.bootstrap_servers,
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_username": ADMIN,
        "kafka_sasl_password": SecretStr(PASSWORDS[ADMIN]),
        "kafka_ssl_cafile": truststore,
    }
    admin = isolated(base_settings, web_port=free_port()).model_copy(update=secure)
    lacking = isolated(base_settings, web_port=free_port()).model_copy(update=secure)
    try:
        kafka.start()
        broker = AclBroker(
            kafka,
            truststore,
            admin,
            as_user(admin, WORKER),
            as_user(admin, OPERATOR),
            as_user(lacking, PARTIAL),
        )
        partial = [
            r for r in worker_rules(lacking, f"User:{PARTIAL}") if r.resource_type != "group"
        ]
        grant(
            kafka,
            truststore,
            [
                *worker_rules(admin, f"User:{WORKER}"),
                *operator_rules(admin, f"User:{OPERATOR}"),
                *partial,
            ],
        )
        # The operator's `Create` ACLs at work; the lacking app's topics come from the admin.
        for settings in (broker.operator, lacking):
            result = creditline(settings, "topics", "--create")
            assert result.returncode == 0, result.stderr
        yield broker
    finally:
        kafka.stop()
        for settings in (admin, lacking):
            asyncio.run(cleanup(settings, topics=False))


async def test_worker_and_operator_commands_work_with_exactly_the_documented_acls(
    acl_broker: AclBroker, tmp_path: Path
) -> None:
    operator, worker_settings = acl_broker.operator, acl_broker.worker
    topics = Topics.from_settings(operator)
    listed = creditline(operator, "topics", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {row["topic"] for row in yaml.safe_load(listed.stdout)} == {
        spec.name for spec in topics.specs(operator)
    }
    doc = yaml.safe_load(resources.files("streams.policies").joinpath("default.yaml").read_text())
    doc["version"] = "acl-test-1"
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(yaml.safe_dump(doc, allow_unicode=True))
    applied = creditline(operator, "policy", "apply", str(policy_file), "--by", "ops", "--yes")
    assert applied.returncode == 0, applied.stderr

    worker = WorkerProcess(worker_settings, tmp_path / "worker.log")
    worker.start()
    try:
        events = [spending_doc(user_id="u-acl", event_id=f"e-acl-{i}") for i in range(3)]
        await produce(
            operator,
            [(topics.spending, b"u-acl", encode(doc)) for doc in events]
            + [(topics.spending, b"u-acl", b"not json")],
        )
        await wait_applied(worker_settings, "u-acl", 3)
        answered = creditline(operator, "request", "u-acl", "1000", "--json", timeout=90)
        assert answered.returncode == 0, answered.stderr
        assert '"user_id": "u-acl"' in answered.stdout
        # The HTTP decision API publishes with the worker's principal.
        posted = await post_decision(worker, request_doc(request_id="q-acl", user_id="u-acl"))
        assert posted == 200

        async def lag_measured() -> bool:
            lag = worker.samples().get("creditline_consumer_lag_records", {})
            return len(lag) == len(topics.inputs) and sum(lag.values()) == 0

        await wait_for(lag_measured, timeout=30, message="the lag metric at 0 on every input")

        async def in_force() -> bool:  # a policy takes effect a moment after it is applied
            return worker.counter("creditline_policy_info", version="acl-test-1") == 1.0

        await wait_for(in_force, timeout=60, message="the applied policy in force")
        assert worker.counter("creditline_records_dead_lettered_total") == 1.0

        dead = creditline(operator, "dlq", "list", "--json")
        assert dead.returncode == 0, dead.stderr
        assert "NOT_JSON" in dead.stdout
        shown = creditline(operator, "policy", "show", "--json")
        assert shown.returncode == 0 and "acl-test-1" in shown.stdout, shown.stderr
        replayed = creditline(operator, "replay", "--json")
        assert replayed.returncode == 0, replayed.stderr
        assert yaml.safe_load(replayed.stdout)["records"] == 4
    finally:
        code = worker.stop()
    log = worker.log()
    assert code == 0, log[-3000:]
    for refusal in ("AUTHORIZATION", "Authorization", "measuring consumer lag failed"):
        assert refusal not in log, log[-3000:]


async def test_the_worker_principal_is_refused_everything_else(acl_broker: AclBroker) -> None:
    settings = acl_broker.worker
    topics = Topics.from_settings(settings)
    producer = AIOKafkaProducer(**producer_options(settings))
    await producer.start()
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            await producer.send_and_wait(topics.repayments, b"forged", key=b"u-1")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topics.dead_letter, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        with pytest.raises(TopicAuthorizationFailedError):
            await consumer.getmany(tp, timeout_ms=5000)
    finally:
        await consumer.stop()

    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        created = await admin.create_topics([NewTopic(f"rogue-{uuid.uuid4().hex[:8]}", 1, 1)])
        deleted = await admin.delete_topics([topics.repayments])
    finally:
        await admin.close()
    # Kafka answers these per topic rather than raising.
    assert [t["error_code"] for t in created.to_object()["topic_errors"]] == [
        TOPIC_AUTHORIZATION_FAILED
    ]
    assert [t["error_code"] for t in deleted.to_object()["topic_error_codes"]] == [
        TOPIC_AUTHORIZATION_FAILED
    ]


def test_a_worker_missing_an_acl_stops_with_one_clear_line(acl_broker: AclBroker) -> None:
    settings = acl_broker.lacking
    started = time.monotonic()
    output = worker_until_exit(settings, timeout=60)
    assert time.monotonic() - started < 30  # refused, not waiting to join the group
    line = (
        f"denies User:{PARTIAL} Read on group {settings.app_id!r}: add that ACL "
        "(`creditline kafka-acls` prints every ACL creditline needs)"
    )
    assert line in output, output[-3000:]
    assert "Traceback" not in output

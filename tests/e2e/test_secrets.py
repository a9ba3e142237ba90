"""Canary secrets and personal data: planted in the settings and in the records of a fully
locked-down deployment (Kafka over SASL_SSL/SCRAM, Redis over TLS as the ACL user), then
searched for in everything the worker and the CLI print, log and export."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from pydantic import SecretStr

from schemas.models import LoanDecision
from streams.adapters.kafka.admin import ensure_topics
from streams.adapters.redis.client import acl_user, redis_client
from streams.devtools.stack.kafka import KafkaCluster
from streams.settings import Settings
from streams.topics import Topics
from tests.builders import asset_doc, encode, repayment_doc, request_doc, spending_doc
from tests.conftest import cleanup, isolated
from tests.e2e.conftest import (
    APP_PASSWORD,
    APP_USER,
    WorkerProcess,
    creditline,
    free_port,
    worker_until_exit,
)
from tests.secure_redis import SecureRedis
from tests.support import produce, read_topic, wait_for

TOKEN = secrets.token_hex(6)
REDIS_PASSWORD = f"canary-redis-{TOKEN}"
#: A user id is pseudonymous personal data: it may be in records and in the outputs that
#: exist to show it (`inspect`, the decisions topic), never in logs or metrics.
PII_USER = f"canary-user-{TOKEN}"
#: Personal data someone put where it does not belong (a name in a field, a free text).
PII_TEXT = f"canary-name-{TOKEN}"


def locked_down(
    base: Settings, kafka: tuple[KafkaCluster, Path], redis: SecureRedis, password: str
) -> Settings:
    """Isolated settings: SASL_SSL to the test broker, TLS + ACL user to the test Redis."""
    cluster, ca_file = kafka
    settings = isolated(
        base,
        partitions=4,
        web_port=free_port(),
        kafka_bootstrap_servers=cluster.bootstrap_servers,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username=APP_USER,
        kafka_sasl_password=SecretStr(APP_PASSWORD),
        kafka_ssl_cafile=ca_file,
    )
    return redis.settings(settings, "creditline", password)


def planted_records(settings: Settings) -> list[tuple[str, bytes | None, bytes | None]]:
    """Good events of the canary user, and bad records carrying personal data."""
    t = Topics.from_settings(settings)
    user = {"user_id": PII_USER}
    good = [
        (t.repayments, repayment_doc(event_id=f"r-{TOKEN}", loan_id=f"l-{TOKEN}", **user)),
        (t.spending, spending_doc(event_id=f"s-{TOKEN}", **user)),
        (t.assets, asset_doc(event_id=f"a-{TOKEN}", **user)),
    ]
    records: list[tuple[str, bytes | None, bytes | None]] = [
        (topic, PII_USER.encode(), encode(doc)) for topic, doc in good
    ]
    records += [
        # A name where an amount belongs; one in an enum; one in an id with a bad format.
        (t.spending, PII_USER.encode(), encode(spending_doc(amount=PII_TEXT, **user))),
        (t.assets, PII_USER.encode(), encode(asset_doc(asset_type=PII_TEXT, **user))),
        (t.spending, PII_USER.encode(), encode(spending_doc(merchant_id=f"{PII_TEXT} !", **user))),
        # The key says one person, the value another.
        (t.repayments, PII_TEXT.encode(), encode(repayment_doc(**user))),
        # Not JSON at all, personal data inside.
        (t.assets, PII_USER.encode(), f"name={PII_TEXT}; user={PII_USER}".encode()),
    ]
    return records


async def test_no_secret_or_personal_data_reaches_logs_metrics_or_errors(
    base_settings: Settings,
    tls_broker: tuple[KafkaCluster, Path],
    secure_redis: SecureRedis,
    tmp_path: Path,
) -> None:
    settings = locked_down(base_settings, tls_broker, secure_redis, REDIS_PASSWORD)
    await secure_redis.grant(settings, REDIS_PASSWORD)
    await ensure_topics(settings)
    topics = Topics.from_settings(settings)
    records = planted_records(settings)
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    captured: dict[str, str] = {}
    try:
        worker.start()
        await produce(settings, records)
        await produce(
            settings,
            [(topics.loan_requests, PII_USER.encode(), encode(request_doc(user_id=PII_USER)))],
        )

        async def all_handled() -> bool:
            return worker.counter("creditline_records_consumed_total") >= len(records) + 1

        await wait_for(all_handled, timeout=60)
        decisions = await read_topic(settings, topics.loan_decisions, expect=1, timeout=60)
        assert LoanDecision.model_validate_json(decisions[0].value).user_id == PII_USER
        assert worker.counter("creditline_records_applied_total") == 4  # 3 events + request
        assert worker.counter("creditline_records_dead_lettered_total") == 5
        captured["metrics"] = worker.metrics_text()
        # The CLI: outputs made to show a user (`inspect`) are checked on stderr only.
        for command in (
            ["status"],
            ["status", "--json"],
            ["topics"],
            ["policy", "show"],
            ["dlq", "list"],
            ["inspect", PII_USER],
        ):
            result = creditline(settings, *command, timeout=90)
            assert result.returncode == 0, (command, result.stderr)
            captured[f"{command} stderr"] = result.stderr
            if command[0] != "inspect":
                captured[f"{command} stdout"] = result.stdout
        assert worker.stop() == 0
    finally:
        worker.stop()
        captured["worker log"] = worker.log()
        await cleanup(secure_redis.admin(settings))

    assert "dead-lettered" in captured["worker log"]  # the log did speak about them
    secrets_ = (APP_PASSWORD, REDIS_PASSWORD, secure_redis.admin_password)
    for where, text in captured.items():
        for secret in secrets_:
            assert secret not in text, f"a secret in {where}"
        if "dlq" not in where:  # listing dead letters is for seeing what was sent
            assert PII_TEXT not in text, f"personal data in {where}"
        if where == "worker log" or where == "metrics":
            assert PII_USER not in text, f"a user id in {where}"


@pytest.mark.parametrize("broken", ["wrong password", "missing permission"])
async def test_a_worker_refused_by_redis_stops_with_one_clear_line(
    base_settings: Settings,
    tls_broker: tuple[KafkaCluster, Path],
    secure_redis: SecureRedis,
    broken: str,
) -> None:
    """Redis refusing the credentials (or a command) is not an outage to wait out: the worker
    exits non-zero at once, saying why, without the password."""
    settings = locked_down(base_settings, tls_broker, secure_redis, REDIS_PASSWORD)
    if broken == "wrong password":
        await secure_redis.grant(settings, REDIS_PASSWORD[::-1])
    else:
        await secure_redis.grant(settings, REDIS_PASSWORD)
        client = redis_client(secure_redis.admin(settings))
        try:  # an operator's mistake: the ACL lacks a command the worker needs
            await client.execute_command("ACL", "SETUSER", acl_user(settings), "-ping")
        finally:
            await client.aclose()
    await ensure_topics(settings)
    try:
        output = worker_until_exit(settings)
    finally:
        await cleanup(secure_redis.admin(settings))
    expected = "refused the credentials" if broken == "wrong password" else "NOPERM"
    critical = [line for line in output.splitlines() if expected in line]
    assert critical, output[-3000:]
    assert "creditline:***@127.0.0.1" in critical[0]
    for secret in (APP_PASSWORD, REDIS_PASSWORD, REDIS_PASSWORD[::-1]):
        assert secret not in output

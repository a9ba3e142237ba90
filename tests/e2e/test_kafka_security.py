"""Kafka over SASL_SSL with SCRAM-SHA-512: a broker with a TLS listener (a test CA and
certificates made now with trustme) and SCRAM users. The worker and the CLI work with the
right credentials; plaintext, a wrong password and an untrusted certificate are refused with
one clear line; the password never shows."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme
from pydantic import SecretStr

from schemas.models import LoanDecision
from streams.devtools.stack.kafka import KafkaCluster
from streams.settings import Settings
from tests.conftest import cleanup, isolated
from tests.e2e.conftest import (
    APP_PASSWORD,
    APP_USER,
    creditline,
    free_port,
    running_worker,
    worker_until_exit,
)


@pytest.fixture
async def secure_settings(
    base_settings: Settings, tls_broker: tuple[KafkaCluster, Path]
) -> AsyncIterator[Settings]:
    """Isolated settings that log in to the TLS broker as the app user."""
    kafka, ca_file = tls_broker
    settings = isolated(
        base_settings,
        kafka_bootstrap_servers=kafka.bootstrap_servers,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username=APP_USER,
        kafka_sasl_password=SecretStr(APP_PASSWORD),
        kafka_ssl_cafile=ca_file,
        web_port=free_port(),
    )
    yield settings
    await cleanup(settings)


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert APP_PASSWORD not in text
        assert APP_PASSWORD[::-1] not in text  # the wrong one either


async def test_worker_and_cli_work_with_the_right_credentials(
    secure_settings: Settings, tmp_path: Path
) -> None:
    settings = secure_settings
    topics = creditline(settings, "topics", "--create")
    assert topics.returncode == 0, topics.stderr
    assert settings.topic_repayments in topics.stdout
    status = creditline(settings, "status")
    assert f"kafka security: SASL_SSL, SCRAM-SHA-512 as {APP_USER}" in status.stdout
    async with running_worker(settings, tmp_path / "worker.log") as worker:
        result = creditline(settings, "request", "u-tls", "1000", "--json", timeout=90)
        assert result.returncode == 0, result.stderr
        decision = LoanDecision.model_validate_json(result.stdout)
        assert decision.user_id == "u-tls"
        assert decision.reasons[0].code == "NO_HISTORY"
        metrics = worker.metrics_text()
        assert_no_secret(worker.log(), metrics)
    assert_no_secret(topics.stdout, topics.stderr, status.stdout, status.stderr)
    assert_no_secret(result.stdout, result.stderr)


def refused(settings: Settings, case: str, other_ca: Path) -> Settings:
    changes: dict[str, dict[str, object]] = {
        "plaintext": {"kafka_security_protocol": "PLAINTEXT"},
        "wrong password": {"kafka_sasl_password": SecretStr(APP_PASSWORD[::-1])},
        "untrusted certificate": {"kafka_ssl_cafile": other_ca},
    }
    return settings.model_copy(update=changes[case])


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("plaintext", "closed the connection: its listener probably requires TLS"),
        ("wrong password", f"refused the login of user '{APP_USER}' with SCRAM-SHA-512"),
        ("untrusted certificate", "presented a TLS certificate that is not trusted"),
    ],
)
def test_the_cli_refuses_bad_credentials_in_one_clear_line(
    secure_settings: Settings, tmp_path: Path, case: str, says: str
) -> None:
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    started = time.monotonic()
    result = creditline(refused(secure_settings, case, other_ca), "topics", timeout=90)
    assert result.returncode == 1
    assert says in result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr  # one line
    assert "Traceback" not in result.stderr
    assert_no_secret(result.stdout, result.stderr)
    assert time.monotonic() - started < 45  # refused, not hung until a timeout


def test_a_worker_with_a_wrong_password_exits_with_a_clear_error(
    secure_settings: Settings, tmp_path: Path
) -> None:
    wrong = refused(secure_settings, "wrong password", tmp_path)
    output = worker_until_exit(wrong, timeout=90)
    assert "wrong username or password" in output
    assert "Traceback" not in output
    assert_no_secret(output)

"""Kafka client options and connection-failure messages (streams/adapters/kafka/client.py)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from pydantic import SecretStr, ValidationError

from streams.adapters.kafka.client import (
    DURABLE_PRODUCER,
    KafkaAccessError,
    client_options,
    explain,
    faust_broker_options,
    producer_options,
)
from streams.settings import Settings, settings_problems

SECRET = "s3cr3t-never-shown"


def sasl(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "kafka_bootstrap_servers": "127.0.0.1:9192,127.0.0.1:9194",
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_username": "creditline",
        "kafka_sasl_password": SecretStr(SECRET),
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


def test_plaintext_is_the_default_and_carries_no_tls_or_login() -> None:
    options = client_options(Settings())
    assert options["security_protocol"] == "PLAINTEXT"
    assert "ssl_context" not in options
    assert "sasl_plain_password" not in options
    assert options["request_timeout_ms"] == 30000


def test_sasl_ssl_options_verify_the_broker_and_log_in() -> None:
    options = client_options(sasl())
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "creditline"
    assert options["sasl_plain_password"] == SECRET
    context = options["ssl_context"]
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname


def test_every_producer_we_build_is_durable() -> None:
    assert DURABLE_PRODUCER == {"acks": "all", "enable_idempotence": True}
    assert producer_options(sasl()).items() >= DURABLE_PRODUCER.items()


def test_faust_gets_the_same_login_without_showing_the_password() -> None:
    options = faust_broker_options(sasl())
    assert options["broker"] == ["kafka://127.0.0.1:9192", "kafka://127.0.0.1:9194"]
    credentials = options["broker_credentials"]
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert credentials.protocol.value == "SASL_SSL"
    assert SECRET not in repr(credentials)
    assert "broker_credentials" not in faust_broker_options(Settings())


def test_settings_never_show_the_password() -> None:
    settings = sasl()
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings.model_dump())


def test_a_settings_error_never_echoes_the_password() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_password=SecretStr(SECRET))
    assert SECRET not in str(caught.value)
    assert settings_problems(caught.value) == (
        "SASL_SSL needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
    )
    with pytest.raises(ValidationError) as caught:
        Settings(web_port=SECRET)
    assert SECRET not in str(caught.value)
    assert settings_problems(caught.value).startswith("CREDITLINE_WEB_PORT: ")


def test_inconsistent_security_settings_are_refused() -> None:
    with pytest.raises(ValidationError, match="KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"):
        Settings(kafka_security_protocol="SASL_SSL")
    with pytest.raises(ValidationError, match="go together"):
        Settings(kafka_ssl_certfile=Path("c.pem"))
    with pytest.raises(ValidationError, match="cannot exceed"):
        Settings(topic_min_insync_replicas=2)


def test_a_missing_ca_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KafkaAccessError, match="cannot load the Kafka TLS files"):
        client_options(sasl(kafka_ssl_cafile=tmp_path / "absent.pem"))


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (
            ssl.SSLCertVerificationError(1, "certificate verify failed"),
            "not trusted",
        ),
        (ssl.SSLError(1, "wrong version number"), "TLS handshake"),
        (SaslAuthenticationFailed("invalid credentials"), "wrong username or password"),
        (UnsupportedSaslMechanismError("no"), "does not enable SCRAM-SHA-512"),
        (TimeoutError(), "did not answer within 30s"),
        (ConnectionRefusedError(111, "refused"), "not reachable"),
    ],
)
def test_each_refusal_is_explained_in_one_line_without_the_secret(
    error: BaseException, says: str
) -> None:
    message = explain(error, sasl(), "127.0.0.1:9192")
    assert says in message
    assert "\n" not in message
    assert SECRET not in message
    assert "127.0.0.1:9192" in message


def test_a_closed_plaintext_connection_suggests_tls() -> None:
    message = explain(KafkaConnectionError("closed"), Settings(), "127.0.0.1:9192")
    assert "requires TLS" in message

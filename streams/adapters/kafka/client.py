"""How every Kafka client of creditline connects, in one place.

Settings become aiokafka keyword arguments here (servers, TLS context, SASL login, timeouts)
and Faust broker credentials; every producer, consumer and admin client in ``streams/`` and
``bench/`` is built from :func:`client_options` or :func:`producer_options`. A connection
that fails is explained in one line by :func:`explain` — never with the password, which is
read from its ``SecretStr`` only to hand it to the client library.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from aiokafka.conn import create_conn
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from aiokafka.helpers import create_ssl_context

from streams.adapters.kafka import records as tolerant_records
from streams.errors import CreditlineError
from streams.settings import Settings

# Every consumer of this process (ours, Faust's) survives header names that are not UTF-8.
tolerant_records.install()

#: Every producer we construct: a write is acknowledged only when all in-sync replicas
#: (at least ``min.insync.replicas``) have it, and retries never duplicate or reorder it.
DURABLE_PRODUCER = {"acks": "all", "enable_idempotence": True}


class KafkaAccessError(CreditlineError):
    """Kafka cannot be reached or refuses us; the message says why and what to set."""


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context for SSL and SASL_SSL (hostname checked), else None."""
    if settings.kafka_security_protocol == "PLAINTEXT":
        return None
    try:
        context: ssl.SSLContext = create_ssl_context(
            cafile=settings.kafka_ssl_cafile,
            certfile=settings.kafka_ssl_certfile,
            keyfile=settings.kafka_ssl_keyfile,
        )
    except (OSError, ssl.SSLError) as exc:
        raise KafkaAccessError(
            f"cannot load the Kafka TLS files (CREDITLINE_KAFKA_SSL_*): {exc}"
        ) from None
    return context


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for any aiokafka producer, consumer or admin client."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
        "request_timeout_ms": int(settings.kafka_request_timeout_seconds * 1000),
    }
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if settings.kafka_security_protocol == "SASL_SSL":
        assert settings.kafka_sasl_password is not None  # checked by Settings
        options |= {
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": settings.kafka_sasl_username,
            "sasl_plain_password": settings.kafka_sasl_password.get_secret_value(),
        }
    return options


def producer_options(settings: Settings) -> dict[str, Any]:
    """:func:`client_options` plus ``acks=all`` and idempotence."""
    return client_options(settings) | DURABLE_PRODUCER


def faust_broker_options(settings: Settings) -> dict[str, Any]:
    """``faust.App`` keyword arguments for the same connection (broker URLs, credentials)."""
    from faust.auth import SASLCredentials, SSLCredentials

    options: dict[str, Any] = {
        "broker": [f"kafka://{server}" for server in settings.kafka_bootstrap_servers.split(",")]
    }
    context = ssl_context(settings)
    if settings.kafka_security_protocol == "SASL_SSL":
        assert settings.kafka_sasl_password is not None  # checked by Settings
        options["broker_credentials"] = SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password.get_secret_value(),
            ssl_context=context,
            mechanism=settings.kafka_sasl_mechanism,
        )
    elif context is not None:
        options["broker_credentials"] = SSLCredentials(context)
    return options


async def start_client(client: Any, settings: Settings) -> None:
    """Start an aiokafka client, or close it and raise a :class:`KafkaAccessError` that says
    why it could not connect."""
    try:
        await client.start()
    except (TimeoutError, KafkaError, OSError):
        # Producers and consumers stop, the admin client closes.
        await (getattr(client, "stop", None) or client.close)()
        raise await diagnose(settings) from None


async def diagnose(settings: Settings) -> KafkaAccessError:
    """Connect to each bootstrap server once and explain the first failure that is more than
    'nothing listens there'."""
    options = client_options(settings)
    unreachable: BaseException | None = None
    for host, port in settings.kafka_endpoints:
        try:
            conn = await create_conn(
                host,
                port,
                request_timeout_ms=options["request_timeout_ms"],
                ssl_context=options.get("ssl_context"),
                security_protocol=options["security_protocol"],
                sasl_mechanism=options.get("sasl_mechanism"),
                sasl_plain_username=options.get("sasl_plain_username"),
                sasl_plain_password=options.get("sasl_plain_password"),
            )
        except (TimeoutError, KafkaError, OSError) as exc:
            if _refused(exc):
                unreachable = exc
                continue
            return KafkaAccessError(explain(exc, settings, f"{host}:{port}"))
        conn.close()
    if unreachable is not None:
        return KafkaAccessError(explain(unreachable, settings, settings.kafka_bootstrap_servers))
    return KafkaAccessError(
        f"Kafka at {settings.kafka_bootstrap_servers} accepted a connection but a client "
        "could not start; see the log for the broker's answer."
    )


def _refused(exc: BaseException) -> bool:
    """Nothing listens there (as opposed to a listener that answered or stayed silent)."""
    return isinstance(exc, OSError) and not isinstance(exc, ssl.SSLError | TimeoutError)


def explain(exc: BaseException, settings: Settings, address: str) -> str:
    """One line for a failed connection to ``address``: what happened and what to set."""
    protocol = settings.kafka_security_protocol
    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = getattr(exc, "verify_message", None) or exc
        return (
            f"Kafka at {address} presented a TLS certificate that is not trusted ({detail}): "
            "set CREDITLINE_KAFKA_SSL_CAFILE to the CA that signed the brokers' certificates."
        )
    if isinstance(exc, ssl.SSLError):
        detail = getattr(exc, "reason", None) or exc
        return (
            f"the TLS handshake with Kafka at {address} failed ({detail}): is it a TLS "
            f"listener? CREDITLINE_KAFKA_SECURITY_PROTOCOL is {protocol}."
        )
    if isinstance(exc, SaslAuthenticationFailed):
        return (
            f"Kafka at {address} refused the login of user {settings.kafka_sasl_username!r} "
            f"with {settings.kafka_sasl_mechanism}: wrong username or password "
            "(CREDITLINE_KAFKA_SASL_USERNAME, CREDITLINE_KAFKA_SASL_PASSWORD)."
        )
    if isinstance(exc, UnsupportedSaslMechanismError):
        return (
            f"Kafka at {address} does not enable {settings.kafka_sasl_mechanism}: set "
            "CREDITLINE_KAFKA_SASL_MECHANISM to a mechanism its listener accepts."
        )
    if isinstance(exc, KafkaConnectionError) and protocol == "PLAINTEXT":
        return (
            f"Kafka at {address} closed the connection: its listener probably requires TLS "
            "(set CREDITLINE_KAFKA_SECURITY_PROTOCOL=SASL_SSL or SSL and the credentials)."
        )
    if isinstance(exc, asyncio.TimeoutError):
        return (
            f"Kafka at {address} did not answer within "
            f"{settings.kafka_request_timeout_seconds:g}s with {protocol}: check the address "
            "and that CREDITLINE_KAFKA_SECURITY_PROTOCOL matches the listener."
        )
    if isinstance(exc, OSError):
        return (
            f"Kafka is not reachable at {address}. Start the local stack with `creditline up` "
            "(or `make up`), or set CREDITLINE_KAFKA_BOOTSTRAP_SERVERS."
        )
    return (
        f"Kafka at {address} refused the connection with {protocol} "
        f"({type(exc).__name__}: {exc}): check CREDITLINE_KAFKA_SECURITY_PROTOCOL and the "
        "credentials."
    )


async def kafka_problem(settings: Settings) -> str | None:
    """None when Kafka answers a metadata request as the configured client (TLS, SASL),
    else why not (one line, never a password)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**client_options(settings))
    try:
        await start_client(admin, settings)
        await admin.list_topics()
    except KafkaAccessError as exc:
        return str(exc)
    except (TimeoutError, KafkaError, OSError) as exc:
        return f"Kafka at {settings.kafka_bootstrap_servers}: {type(exc).__name__}"
    finally:
        await admin.close()
    return None

"""Faust, set up for creditline: raw records as library-independent ones, an idempotent
producer, only creditline's pages on the web port, and the app's broker options."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import faust
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.web.drivers import aiohttp as aiohttp_web

from streams.adapters.kafka.client import DURABLE_PRODUCER, faust_broker_options
from streams.adapters.kafka.sink import LOG_APPEND_TIME, inbound_headers
from streams.ports import InboundRecord
from streams.settings import Settings


def to_inbound(event: Any) -> InboundRecord:
    """A Faust event as a library-independent record."""
    message = event.message
    headers = message.headers or []
    if isinstance(headers, dict):
        headers = list(headers.items())
    return InboundRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        timestamp=message.timestamp,
        headers=inbound_headers(headers),
        log_append_time=getattr(message, "timestamp_type", 0) == LOG_APPEND_TIME,
    )


class DurableProducer(aiokafka_driver.Producer):
    """Faust's aiokafka producer with ``acks=all`` and idempotence always on.

    Faust turns idempotence on only inside transactions (``processing_guarantee=
    "exactly_once"``), which creditline does not use: its effects are made idempotent in
    Redis instead. ``_settings_extra`` is the hook Faust merges into the producer's options
    for exactly this (it returns the same two settings in a transaction).
    """

    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), **DURABLE_PRODUCER}


class DurableTransport(aiokafka_driver.Transport):
    """Faust's aiokafka transport whose producer is a :class:`DurableProducer`."""

    Producer = DurableProducer


class OwnPagesOnly(aiohttp_web.Web):
    """Faust's aiohttp web server without Faust's own pages: only creditline's answer.

    Faust mounts blueprints on the web port — ``/router`` (``/router/x/`` answers 500 with a
    traceback) and ``/table`` always, an index at ``/``, statistics and ``/graph`` with debug.
    Its ``web_*_enabled`` settings leave the index, and environment variables
    (``APP_WEB_ROUTER_ENABLED``…) override them; the blueprint lists are class attributes for
    subclasses to change, so here they are empty and anything but our pages is a plain 404.
    """

    default_blueprints = ()
    production_blueprints = ()
    debug_blueprints = ()
    optional_blueprints = ()


def faust_data_dir(settings: Settings) -> Path:
    """Where Faust may create its data directory, outside the working directory.

    Faust creates one even for in-memory tables and writes nothing to it; it is never read
    back, so it lives under the system's temporary directory (one per group).
    """
    root = Path(tempfile.gettempdir()) / "creditline-faust"
    root.mkdir(exist_ok=True)
    return root / settings.faust_group


def faust_app(settings: Settings) -> faust.App:
    """A Faust app for these settings: raw bytes in and out (decoding is creditline's, so bad
    input is dead-lettered with a reason instead of crashing a Faust codec), an idempotent
    producer, only creditline's pages."""
    app = faust.App(
        settings.faust_group,
        **faust_broker_options(settings),
        store="memory://",
        datadir=faust_data_dir(settings),
        autodiscover=False,
        web_host=settings.web_host,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication_factor,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_seconds / 3),
        broker_rebalance_timeout=max(20.0, settings.session_timeout_seconds * 2),
        producer_acks=-1,
        producer_max_request_size=settings.max_message_bytes + 1024 * 1024,
        consumer_max_fetch_size=settings.max_message_bytes + 1024 * 1024,
        # Records are read as raw bytes: decoding is ours, so bad input is dead-lettered
        # with a reason instead of crashing the stream in a Faust codec.
        key_serializer="raw",
        value_serializer="raw",
    )
    # Before anything asks for the producer: our transport makes it idempotent.
    app.transport = DurableTransport(app.conf.broker_consumer, app)
    # Before any page is added: a server with only our pages.
    app.web = OwnPagesOnly(app)
    return app

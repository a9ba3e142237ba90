"""Faust, set up for creditline: no Kafka consumer of its own, an idempotent producer, only
creditline's pages on the web port, and the app's broker options."""

from __future__ import annotations

import signal
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import faust
from faust.app.base import BootStrategy
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.web.drivers import aiohttp as aiohttp_web

from streams.adapters.kafka.client import DURABLE_PRODUCER, faust_broker_options
from streams.settings import Settings


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
    return root / settings.faust_app_id


def faust_app(settings: Settings) -> faust.App:
    """A Faust app for these settings: its tasks, timers, pages and an idempotent producer,
    and no Kafka consumer — creditline reads its topics with plain aiokafka consumers that
    commit only what is handled (:mod:`streams.adapters.kafka.events`), so Faust joins no
    consumer group and runs no consumer thread."""
    app = faust.App(
        settings.faust_app_id,
        **faust_broker_options(settings),
        store="memory://",
        datadir=faust_data_dir(settings),
        autodiscover=False,
        web_host=settings.web_host,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication_factor,
        producer_acks=-1,
        producer_max_request_size=settings.max_message_bytes + 1024 * 1024,
    )
    app.boot_strategy = BootStrategy(app, enable_kafka_consumer=False)
    # Before anything asks for the producer: our transport makes it idempotent.
    app.transport = DurableTransport(app.conf.broker_consumer, app)
    # Before any page is added: a server with only our pages.
    app.web = OwnPagesOnly(app)
    return app


#: The signals that ask a worker to stop gracefully.
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})


def hold_stop_signals() -> None:
    """Hold SIGTERM and SIGINT back until :class:`StoppableWorker` can act on them.

    Until Faust installs its handlers, a SIGTERM kills a starting process outright: a role
    ``all`` worker stopped while its fold process was still starting lost the fold without
    its orderly stop (seen in CI, the fold niced and slow to start). Held, the signal waits
    a moment and then stops the process the graceful way. Call before forking the fold: the
    child inherits the mask.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


class StoppableWorker(faust.Worker):
    """Faust's worker, which delivers the stop signals held back while it started."""

    def _repr_name(self) -> str:
        return "Worker"  # its log lines stay Faust's own ("[^Worker]: Ready"), which tools read

    def install_signal_handlers(self) -> None:
        super().install_signal_handlers()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)

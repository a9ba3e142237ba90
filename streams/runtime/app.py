"""The Faust app: a task and an agent that only decode records, call the core and write through
adapters.

* ``fold_events`` (a task) reads the three event topics in batches with
  :class:`~streams.adapters.kafka.events.EventConsumer` — plain aiokafka, its own consumer
  group, offsets committed only after a batch is stored — and folds them into Redis.
* ``answer_loan_requests`` (a Faust agent, ``concurrency=1``: higher values can commit past
  in-flight records) answers each request from the live state as soon as it arrives. Requests
  are taken with ``noack_take`` and acked only after they are answered: ``take()`` would ack
  a batch even when its body raised.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import faust
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.web.drivers import aiohttp as aiohttp_web
from prometheus_client import generate_latest

from streams.adapters.kafka.client import DURABLE_PRODUCER, faust_broker_options
from streams.adapters.kafka.events import EventConsumer
from streams.adapters.kafka.lag import LagMonitor
from streams.adapters.kafka.policies import PolicyWatcher
from streams.adapters.kafka.sink import LOG_APPEND_TIME, FaustSink, inbound_headers
from streams.adapters.redis.client import describe_redis_error
from streams.adapters.redis.store import RedisStore
from streams.core.policy import load_default_policy
from streams.core.timeline import PolicyTimeline
from streams.errors import OperatorActionRequired, ShuttingDown, Unavailable
from streams.metrics import Metrics
from streams.ports import InboundRecord
from streams.service.decide import LoanDecider
from streams.service.fold import EventFolder
from streams.service.review import ReviewSweeper
from streams.settings import Settings, get_settings
from streams.topics import Topics

log = logging.getLogger(__name__)

#: Loan requests are answered one by one, as soon as each arrives: a bigger batch waits for
#: Faust's take timer (p50 15.6 → 7.8 ms, p99 58 → 36 ms at 200 requests/s when 50 per batch
#: became 1), and answering costs two Redis round trips per request whatever the batch.
LOAN_BATCH_MAX = 1
#: Only bounds the take loop's idle wake-ups: a full batch (one request) is yielded at once.
LOAN_BATCH_WAIT_SECONDS = 0.05
#: How often the storm guards expire old outcomes and rejection summaries fall due, records
#: or not (a few microseconds each: a deque or two and a clock reading).
SHELL_TICK_SECONDS = 1.0


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


def build_app(settings: Settings, metrics: Metrics) -> faust.App:
    """The Faust app with its agents and the /metrics page."""
    topics = Topics.from_settings(settings)
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
    sink = FaustSink(app)
    policies = PolicyWatcher(settings, metrics, fallback=load_default_policy())

    def timelines() -> PolicyTimeline:
        return policies.timeline

    @app.task  # type: ignore[untyped-decorator]
    async def follow_policies() -> None:
        """Load the latest policy before any record is processed, then follow changes."""
        try:
            await policies.start()
            while not app.should_stop:
                await policies.poll(timeout_ms=500)
        finally:
            await policies.stop()

    def stopping() -> bool:
        return bool(app.should_stop)

    requests_channel = app.topic(
        topics.loan_requests,
        key_type=bytes,
        value_type=bytes,
        partitions=settings.topic_partitions,
        acks=True,
    )

    async def refused(store: RedisStore) -> bool:
        """True (and the worker crashing) when Redis refuses our credentials or commands.

        Checked before consuming: with wrong credentials nothing could ever be applied, and
        an operator must act; an unreachable Redis, by contrast, is waited for batch by batch.
        """
        try:
            await store.ping()
        except OperatorActionRequired as exc:
            log.critical("%s; stopping the worker", describe_redis_error(settings, exc))
            await app.crash(exc)
            return True
        except Unavailable as exc:
            log.warning("%s; waiting for it", describe_redis_error(settings, exc))
        return False

    async def unapplied(exc: Exception, batch: str) -> None:
        """Stop on a batch that could not be applied: an unapplied batch must never be
        skipped (later records would be committed around it), so the worker stops and
        restarts from the last commit."""
        if isinstance(exc, ShuttingDown):
            log.info("stopping with %s unapplied; it will be redelivered", batch)
        elif isinstance(exc, OperatorActionRequired):
            log.critical("%s; stopping the worker", describe_redis_error(settings, exc))
            await app.crash(exc)
        else:
            log.critical("batch failed unexpectedly (%s); stopping the worker", type(exc).__name__)
            await app.crash(exc)

    async def drain(stream: Any, batches: Any, handler: Any) -> None:
        async for batch in batches:
            records: Sequence[InboundRecord] = [to_inbound(e) for e in batch]
            try:
                await handler(records)
            except Exception as exc:
                await unapplied(exc, f"a batch of {len(batch)} records")
                return
            for event in batch:
                await stream.ack(event)

    #: The running event folder and loan decider (whichever this worker's role runs).
    shells: list[EventFolder | LoanDecider] = []

    @app.timer(interval=SHELL_TICK_SECONDS)  # type: ignore[untyped-decorator]
    async def tick_shells() -> None:
        """A dead-letter storm ends and a burst's rejections are reported on a quiet topic
        too: with no records there are no batches to do it."""
        for shell in shells:
            shell.tick()

    lag = LagMonitor(settings, metrics)

    @app.task  # type: ignore[untyped-decorator]
    async def export_consumer_lag() -> None:
        """Every few seconds, the group's lag per input topic (for alerts and dashboards)."""
        await lag.start()
        try:
            while not app.should_stop:
                try:
                    await lag.measure()
                except Exception as exc:  # a broker hiccup must not stop the worker
                    log.warning("measuring consumer lag failed: %s", type(exc).__name__)
                await asyncio.sleep(settings.lag_interval_seconds)
        finally:
            await lag.stop()

    async def fold_events() -> None:
        await policies.ready.wait()
        store = RedisStore.connect(settings, metrics)
        folder = EventFolder(settings, store, sink, metrics, timelines, should_stop=stopping)
        sweeper = ReviewSweeper(folder)
        consumer = EventConsumer(settings, topics.events, folder.process)
        shells.append(folder)
        try:
            if await refused(store):
                return
            await consumer.start()
            await consumer.run(stopping, sweeper.sweep, settings.review_interval_seconds)
        except Exception as exc:
            await unapplied(exc, "the batch in flight")
        finally:
            shells.remove(folder)
            await consumer.stop()
            await store.close()

    async def answer_loan_requests(stream: Any) -> None:
        await policies.ready.wait()
        store = RedisStore.connect(settings, metrics)
        decider = LoanDecider(
            settings,
            store,
            sink,
            metrics,
            timelines,
            should_stop=stopping,
            policy_confirmed=policies.confirmed,
        )
        shells.append(decider)
        try:
            if await refused(store):
                return
            batches = stream.noack_take(LOAN_BATCH_MAX, within=LOAN_BATCH_WAIT_SECONDS)
            await drain(stream, batches, decider.process)
        finally:
            shells.remove(decider)
            await store.close()

    if settings.worker_role in ("all", "events"):
        app.task(fold_events)
    if settings.worker_role in ("all", "decisions"):
        app.agent(requests_channel, concurrency=1, name="answer_loan_requests")(
            answer_loan_requests
        )

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        return web.bytes(
            generate_latest(metrics.registry), content_type="text/plain; version=0.0.4"
        )

    @app.page("/healthz")
    async def health_page(web: Any, request: Any) -> Any:
        return web.json(
            {
                "status": "ok",
                "groups": list(settings.consumer_groups),
                "role": settings.worker_role,
                "policy": policies.current.version,
            }
        )

    return app


def __getattr__(name: str) -> Any:
    """``streams.runtime.app.app``, built on first use from the environment (for
    ``faust -A streams.runtime.app``)."""
    if name == "app":
        built = build_app(get_settings(), Metrics())
        globals()["app"] = built
        return built
    raise AttributeError(name)

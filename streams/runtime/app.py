"""The worker: a Faust app whose units only read records, hand them to the services and
commit them once the services are done (see :mod:`streams.runtime.bootstrap` for the wiring).

* ``follow_policies`` (task) reads the policy topic before anything else, then follows it.
* ``fold_events`` (task) reads the three event topics in batches with
  :class:`~streams.adapters.kafka.events.EventConsumer` — plain aiokafka, its own consumer
  group, offsets committed only after a batch is stored — folds them, and between batches
  sweeps the users whose status changes with time alone.
* ``answer_loan_requests`` (task) reads the loan-request topic with
  :class:`~streams.adapters.kafka.requests.RequestConsumer` — plain aiokafka, group
  ``APP_ID-decisions`` — and answers each batch of arrived requests at once; offsets are
  committed in order, each batch's once its answers are acknowledged by Kafka.
* Faust's own Kafka consumer is off (:func:`~streams.runtime.faust_setup.faust_app`): Faust
  runs the tasks, the producer and the web pages, and consumes nothing.
* ``tick_shells`` (timer) and ``export_consumer_lag`` (task); ``/metrics`` and ``/healthz``.
* ``return_free_memory`` (timer, every ``MEMORY_RETURN_SECONDS``) hands the memory a process
  freed back to the operating system, in the worker and in each fold process.
* In role ``all`` with ``WORKER_FOLD=process`` (the default), ``fold_events`` runs in
  ``WORKER_FOLDS`` processes of its own (:mod:`streams.runtime.fold_process`) and
  ``watch_fold`` stops the worker when one of them stops; ``/metrics`` adds up every
  process's metrics.
* With ``answer_loan_requests``, the HTTP decision API (:mod:`streams.runtime.http_api`):
  ``POST /v1/decisions``, ``GET /v1/decisions/{request_id}`` and the decision topic's tail.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import faust
from prometheus_client import generate_latest

from streams.adapters.kafka.events import BatchConsumer
from streams.adapters.kafka.lag import LagMonitor
from streams.adapters.kafka.sink import FaustSink
from streams.adapters.redis.client import describe_redis_error
from streams.adapters.redis.store import RedisStore
from streams.errors import FoldStopped, OperatorActionRequired, ShuttingDown, Unavailable
from streams.metrics import Metrics
from streams.runtime.bootstrap import Components
from streams.runtime.exposition import merge_pages
from streams.runtime.faust_setup import faust_app
from streams.runtime.fold_process import FoldProcesses
from streams.runtime.http_api import DecisionApi
from streams.runtime.tuning import memory_returner
from streams.service.decide import LoanDecider
from streams.service.fold import EventFolder
from streams.settings import Settings, get_settings

log = logging.getLogger(__name__)

#: How often the storm guards expire old outcomes and rejection summaries fall due, records
#: or not (a few microseconds each).
SHELL_TICK_SECONDS = 1.0
#: How often a role-``all`` worker checks that its fold process still runs.
FOLD_WATCH_SECONDS = 0.5


class _Worker:
    """The worker's units, registered on a Faust app; each is small and named."""

    def __init__(self, app: faust.App, parts: Components, folds: FoldProcesses | None) -> None:
        self.app = app
        self.parts = parts
        self.settings = parts.settings
        #: The fold's own processes (role ``all``, ``WORKER_FOLD=process``), else None.
        self.folds = folds
        #: The running event folder and loan decider (whichever this worker's role runs).
        self.shells: list[EventFolder | LoanDecider] = []

    def stopping(self) -> bool:
        return bool(self.app.should_stop)

    def answering(self) -> bool:
        """Loan requests are being answered: the policies are read and the worker runs."""
        return self.parts.policies.ready.is_set() and not self.stopping()

    async def refused(self, store: RedisStore) -> bool:
        """True (and the worker crashing) when Redis refuses our credentials or commands.

        Checked before consuming: with wrong credentials nothing could ever be applied, and
        an operator must act; an unreachable Redis, by contrast, is waited for batch by batch.
        """
        try:
            await store.ping()
        except OperatorActionRequired as exc:
            log.critical("%s; stopping the worker", describe_redis_error(self.settings, exc))
            await self.app.crash(exc)
            return True
        except Unavailable as exc:
            log.warning("%s; waiting for it", describe_redis_error(self.settings, exc))
        return False

    async def unapplied(self, exc: Exception, batch: str) -> None:
        """Stop on a batch that could not be applied: an unapplied batch must never be
        skipped (later records would be committed around it), so the worker stops and
        restarts from the last commit."""
        if isinstance(exc, ShuttingDown):
            log.info("stopping with %s unapplied; it will be redelivered", batch)
        elif self.stopping() and not isinstance(exc, OperatorActionRequired):
            # The worker is stopping: its producer and consumers close under the batch in
            # flight. Nothing of it was acknowledged, so it is redelivered, as above.
            log.info(
                "stopping with %s unapplied (%s as the worker stopped); it will be redelivered",
                batch,
                type(exc).__name__,
            )
        elif isinstance(exc, OperatorActionRequired):
            log.critical("%s; stopping the worker", describe_redis_error(self.settings, exc))
            await self.app.crash(exc)
        else:
            log.critical("batch failed unexpectedly (%s); stopping the worker", type(exc).__name__)
            await self.app.crash(exc)

    async def follow_policies(self) -> None:
        """Load the policy history before any record is processed, then follow changes."""
        policies = self.parts.policies
        try:
            await policies.start()
            while not self.app.should_stop:
                await policies.poll(timeout_ms=500)
        finally:
            await policies.stop()

    async def tick_shells(self) -> None:
        """A dead-letter storm ends and a burst's rejections are reported on a quiet topic
        too: with no records there are no batches to do it."""
        for shell in self.shells:
            shell.tick()

    async def export_consumer_lag(self) -> None:
        """Every few seconds, the groups' lag per input topic (for alerts and dashboards)."""
        lag = LagMonitor(self.settings, self.parts.metrics)
        while True:
            try:
                await lag.start()
                break
            except Exception as exc:  # a broker away as the worker starts must not stop it
                log.warning("consumer lag cannot be measured yet: %s", type(exc).__name__)
                with contextlib.suppress(Exception):
                    await lag.stop()
                if self.app.should_stop:
                    return
                await asyncio.sleep(self.settings.lag_interval_seconds)
        try:
            while not self.app.should_stop:
                try:
                    await lag.measure()
                except Exception as exc:  # a broker hiccup must not stop the worker
                    log.warning("measuring consumer lag failed: %s", type(exc).__name__)
                await asyncio.sleep(self.settings.lag_interval_seconds)
        finally:
            await lag.stop()

    async def fold_events(self) -> None:
        """Fold the event topics batch by batch; review due users between batches."""
        await self.parts.policies.ready.wait()
        store = self.parts.store()
        folder = self.parts.folder(store)
        sweeper = self.parts.sweeper(folder)
        consumer = self.parts.event_consumer(folder)
        await self._consume(
            folder,
            store,
            consumer,
            lambda: consumer.run(
                self.stopping, sweeper.sweep, self.settings.review_interval_seconds
            ),
            "the batch in flight",
        )

    async def watch_fold(self) -> None:
        """Stop the worker when one of its fold processes stops: requests would still be
        answered, on state that no longer moves (or with fewer folds than asked for), behind a
        healthy endpoint."""
        folds = self.folds
        assert folds is not None
        while not self.stopping():
            fold = folds.stopped_on_its_own()
            if fold is not None:
                code = fold.exit_code()
                log.critical(
                    "the event fold (process %s) stopped with exit code %s; stopping the worker",
                    fold.pid,
                    code,
                )
                await self.app.crash(FoldStopped(f"fold process exited with {code}"))
                return
            await asyncio.sleep(FOLD_WATCH_SECONDS)

    async def answer_loan_requests(self) -> None:
        """Answer loan requests as they arrive; commit them once their answers are out."""
        await self.parts.policies.ready.wait()
        store = self.parts.store()
        decider = self.parts.decider(store)
        consumer = self.parts.request_consumer(decider)
        await self._consume(
            decider, store, consumer, lambda: consumer.run(self.stopping), "the requests in flight"
        )

    async def _consume(
        self,
        shell: EventFolder | LoanDecider,
        store: RedisStore,
        consumer: BatchConsumer,
        run: Callable[[], Awaitable[None]],
        in_flight: str,
    ) -> None:
        """Run ``consumer`` feeding ``shell`` until the worker stops; a batch that cannot be
        handled stops the worker (:meth:`unapplied`)."""
        self.shells.append(shell)
        try:
            if await self.refused(store):
                return
            await consumer.start()
            await run()
        except Exception as exc:
            await self.unapplied(exc, in_flight)
        finally:
            self.shells.remove(shell)
            await consumer.stop()
            await store.close()

    async def metrics_page(self, web: Any, request: Any) -> Any:
        page = generate_latest(self.parts.metrics.registry)
        if self.folds is not None:
            async with aiohttp.ClientSession() as session:
                folds = await self.folds.metrics_texts(session)
            if folds is None:
                # Half the counters would look like a restart to the scraper: no page at all
                # marks this scrape failed instead.
                return web.text("the event fold's metrics cannot be read\n", status=503)
            if folds:
                page = merge_pages([page.decode(), *folds])
        return web.bytes(page, content_type="text/plain; version=0.0.4")

    async def health_page(self, web: Any, request: Any) -> Any:
        health: dict[str, Any] = {
            "status": "ok",
            "groups": list(self.settings.consumer_groups),
            "role": self.settings.worker_role,
            "policy": self.parts.policies.current.version,
        }
        if self.folds is None:
            return web.json(health)
        health["folds"] = [
            {
                "process": fold.pid,
                "running": fold.running(),
                "metrics": f"http://127.0.0.1:{fold.port}/metrics",
            }
            for fold in self.folds.processes
        ]
        # The first alone, as before there were several (kept for what reads it).
        health["fold"] = health["folds"][0]
        # From the entries shown: a fold stopping meanwhile cannot leave a 200 naming it stopped.
        running = all(fold["running"] for fold in health["folds"])
        if not running:
            health["status"] = "fold stopped"
        return web.json(health, status=200 if running else 503)

    def register(self) -> None:
        """Put the units this worker's role runs on the app."""
        app, settings = self.app, self.settings
        app.task(self.follow_policies)
        app.timer(interval=SHELL_TICK_SECONDS, name="tick_shells")(self.tick_shells)
        give_back = memory_returner()
        if settings.memory_return_seconds and give_back is not None:
            returned = self.parts.metrics.memory_returned

            async def return_free_memory() -> None:
                returned.inc(give_back())

            app.timer(interval=settings.memory_return_seconds, name="return_free_memory")(
                return_free_memory
            )
        app.task(self.export_consumer_lag)
        if self.folds is not None:
            folds = self.folds
            app.task(self.watch_fold)

            async def stop_fold(sender: Any, /, *args: Any, **kwargs: Any) -> None:
                # As the worker stops, the fold stops too (its batch in flight ends after a
                # part, uncommitted); the command line waits for it once the worker stopped.
                folds.terminate()

            app.on_before_shutdown.connect(stop_fold)
        elif settings.worker_role in ("all", "events"):
            app.task(self.fold_events)
        if settings.worker_role in ("all", "decisions"):
            app.task(self.answer_loan_requests)
            DecisionApi(app, self.parts, ready=self.answering).register()
        # Faust makes a page's function the method of a view class: plain functions here.

        async def metrics(web: Any, request: Any) -> Any:
            return await self.metrics_page(web, request)

        async def healthz(web: Any, request: Any) -> Any:
            return await self.health_page(web, request)

        app.page("/metrics")(metrics)
        app.page("/healthz")(healthz)


def build_app(
    settings: Settings, metrics: Metrics, folds: FoldProcesses | None = None
) -> faust.App:
    """The worker's Faust app for these settings; with ``folds``, the event fold is those
    processes' and this app answers loan requests (role ``all``)."""
    app = faust_app(settings)
    parts = Components(settings, metrics, FaustSink(app), should_stop=lambda: app.should_stop)
    _Worker(app, parts, folds).register()
    return app


def __getattr__(name: str) -> Any:
    """``streams.runtime.app.app``, built on first use from the environment (for
    ``faust -A streams.runtime.app``)."""
    if name == "app":
        built = build_app(get_settings(), Metrics())
        globals()["app"] = built
        return built
    raise AttributeError(name)

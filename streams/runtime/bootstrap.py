"""The composition root: settings → adapters → services, in one place.

Every process that folds events or answers requests (the worker's Faust tasks, ``replay``)
gets its parts from :class:`Components`, so they are wired the same way everywhere.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from streams.adapters.kafka.events import EventConsumer
from streams.adapters.kafka.policy_watcher import PolicyWatcher
from streams.adapters.kafka.requests import RequestConsumer
from streams.adapters.redis.store import RedisStore
from streams.core import compiled
from streams.core.policy import load_default_policy
from streams.core.timeline import PolicyTimeline
from streams.metrics import Metrics
from streams.ports import RecordSink
from streams.runtime.tuning import collection_deferred
from streams.service.decide import LoanDecider
from streams.service.fold import EventFolder
from streams.service.review import ReviewSweeper
from streams.settings import Settings
from streams.topics import Topics

log = logging.getLogger(__name__)


@dataclass
class Components:
    """What a worker is made of, built from its settings on demand."""

    settings: Settings
    metrics: Metrics
    sink: RecordSink
    should_stop: Callable[[], bool] = lambda: False
    policies: PolicyWatcher = field(init=False)

    def __post_init__(self) -> None:
        self.policies = PolicyWatcher(self.settings, self.metrics, load_default_policy())
        compiled.use_compiled(self.settings.compiled_core)
        if compiled.active():
            log.info("status machine: compiled")
        else:
            reason = "switched off" if compiled.available() else "not built"
            log.info("status machine: the Python core alone (the compiled loop is %s)", reason)

    @property
    def topics(self) -> Topics:
        """The topic names in use."""
        return Topics.from_settings(self.settings)

    def timelines(self) -> PolicyTimeline:
        """The policy versions known now, with the instants they take effect."""
        return self.policies.timeline

    def store(self) -> RedisStore:
        """A new connection to the state store."""
        return RedisStore.connect(self.settings, self.metrics)

    def folder(self, store: RedisStore) -> EventFolder:
        """The event folder on ``store``."""
        return EventFolder(
            self.settings,
            store,
            self.sink,
            self.metrics,
            self.timelines,
            should_stop=self.should_stop,
        )

    def decider(self, store: RedisStore) -> LoanDecider:
        """The loan decider on ``store`` (it waits for the policy topic to be read up to a
        request's instant before answering it)."""
        return LoanDecider(
            self.settings,
            store,
            self.sink,
            self.metrics,
            self.timelines,
            should_stop=self.should_stop,
            policy_confirmed=self.policies.confirmed,
            candidate=lambda: self.policies.candidate,
        )

    def sweeper(self, folder: EventFolder) -> ReviewSweeper:
        """The review sweep of ``folder``'s users."""
        return ReviewSweeper(folder)

    def event_consumer(self, folder: EventFolder) -> EventConsumer:
        """The batch consumer of the event topics, feeding ``folder`` (a batch is folded
        with the garbage collector paused: :func:`collection_deferred`)."""
        consumer = EventConsumer(
            self.settings, self.topics.events, collection_deferred(folder.process)
        )
        # A rebalance that waits for a backlog's batch ends it after the part in hand.
        folder.interrupted = consumer.revoking
        sizer = consumer.sizer
        self.metrics.batch_limit.set_function(lambda: sizer.limit)
        self.metrics.batch_backfilling.set_function(lambda: float(sizer.backfilling))
        sizer.on_backfill_batch = self.metrics.backfill_batches.inc
        return consumer

    def request_consumer(self, decider: LoanDecider) -> RequestConsumer:
        """The batch consumer of the loan-request topic, answered by ``decider``."""
        return RequestConsumer(self.settings, self.topics.loan_requests, decider.begin)

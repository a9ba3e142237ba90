"""The watcher that gives every worker every valid policy and scorecard version on the policy
topic, with the instant each takes effect, without a restart."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.adapters.kafka.client import client_options, start_client
from streams.adapters.kafka.policies import (
    PolicyRecord,
    decode_policy_record,
    policy_timeline,
    shadow_candidate,
)
from streams.core.policy import Policy
from streams.core.scorecard import ScorecardDocument, load_default_scorecard
from streams.core.shadow import Candidate
from streams.core.timeline import PolicyTimeline
from streams.metrics import Metrics
from streams.settings import Settings
from streams.topics import Topics

log = logging.getLogger(__name__)

#: How stale the data a poll returns may be (aiokafka fetches in the background): a
#: conservative allowance when deciding up to when the topic is known.
_READ_MARGIN = timedelta(seconds=1)


class PolicyWatcher:
    """Follows the policy topic: ``timeline`` holds every valid policy and scorecard version
    with the instant it takes effect; ``current`` / ``current_card`` are the ones in force
    now (or the fallbacks, the shipped ones)."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        fallback: Policy,
        fallback_card: ScorecardDocument | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.fallback = fallback
        self.fallback_card = fallback_card or load_default_scorecard()
        self._records: list[PolicyRecord] = []
        self._shadow_records: list[PolicyRecord] = []
        #: What is in shadow (None: nothing).
        self.candidate: Candidate | None = None
        self._timeline = policy_timeline([], fallback, self.fallback_card)
        self._current = fallback
        self._current_card = self.fallback_card
        self._consumer: AIOKafkaConsumer | None = None
        self._tp = TopicPartition(Topics.from_settings(settings).policy, 0)
        self.ready = asyncio.Event()
        #: Wall-clock time up to which every record on the topic is known to have been read.
        self.caught_up_at: datetime | None = None
        self._caught_up = asyncio.Event()
        self._set_active(fallback)

    @property
    def current(self) -> Policy:
        """The policy in force now."""
        return self._timeline.at(datetime.now(UTC))

    @property
    def current_card(self) -> ScorecardDocument:
        """The scorecard in force now."""
        return self._timeline.card_at(datetime.now(UTC))

    @property
    def timeline(self) -> PolicyTimeline:
        """Every valid version and when it takes effect; a batch or decision takes one
        timeline and judges each instant by the version in force then."""
        return self._timeline

    async def confirmed(self, moment: datetime, wait_seconds: float = 2.0) -> bool:
        """Whether every version in force at ``moment`` is known: the topic was read to its
        end after any version taking effect by ``moment`` had to be applied (versions take
        effect ``policy_activation_seconds`` after they are applied). Waits a little."""
        activation = timedelta(seconds=self.settings.policy_activation_seconds)
        deadline = asyncio.get_running_loop().time() + wait_seconds
        while True:
            if self.caught_up_at is not None and self.caught_up_at >= moment - activation:
                return True
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return False
            self._caught_up.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._caught_up.wait()

    def refresh(self) -> None:
        """Show the versions in force now (versions take effect at their own instant)."""
        self._set_active(self.current)
        card = self.current_card
        if card.version != self._current_card.version:
            log.info("scorecard %s in force (was %s)", card.version, self._current_card.version)
            with contextlib.suppress(KeyError):
                self.metrics.scorecard_info.remove(self._current_card.version)
        self.metrics.scorecard_info.labels(card.version).set(1)
        self._current_card = card

    def _set_active(self, policy: Policy) -> None:
        previous = getattr(self, "_shown_version", None)
        if previous is not None and previous != policy.version:
            log.info("policy %s in force (was %s)", policy.version, previous)
            with contextlib.suppress(KeyError):
                self.metrics.policy_info.remove(previous)
        self.metrics.policy_info.labels(policy.version).set(1)
        self._shown_version = policy.version
        self._current = policy

    def _apply(self, record: PolicyRecord) -> None:
        if record.shadow and record.valid:
            self._follow_shadow(record)
            return
        if not record.valid:
            rejected = (
                self.metrics.scorecard_rejected
                if record.kind == "scorecard"
                else self.metrics.policy_rejected
            )
            rejected.inc()
            kept = self._current_card if record.kind == "scorecard" else self._current
            log.error(
                "%s %s at offset %d rejected, keeping %s: %s",
                record.kind,
                record.version,
                record.offset,
                kept.version,
                "; ".join(record.problems),
            )
            return
        self._records.append(record)
        self._timeline = policy_timeline(self._records, self.fallback, self.fallback_card)
        log.info(
            "%s %s read: in effect from %s",
            record.kind,
            record.version,
            record.effective_from.isoformat() if record.effective_from else "?",
        )
        self.refresh()

    def _follow_shadow(self, record: PolicyRecord) -> None:
        before = self.candidate
        self._shadow_records.append(record)
        self.candidate = shadow_candidate(self._shadow_records)
        if before is not None and (self.candidate is None or before.label != self.candidate.label):
            with contextlib.suppress(KeyError):
                self.metrics.shadow_info.remove(before.label)
        if self.candidate is None:
            log.info("shadow stopped (was %s)", before.label if before else "nothing")
            return
        log.info("in shadow: %s", self.candidate.label)
        self.metrics.shadow_info.labels(self.candidate.label).set(1)

    async def start(self) -> None:
        """Read the topic to its end (the latest valid version wins), then mark ready."""
        consumer = AIOKafkaConsumer(**client_options(self.settings), enable_auto_commit=False)
        await start_client(consumer, self.settings)
        self._consumer = consumer
        consumer.assign([self._tp])
        await consumer.seek_to_beginning(self._tp)
        end = (await consumer.end_offsets([self._tp]))[self._tp]
        while await consumer.position(self._tp) < end:
            await self.poll(timeout_ms=1000)
        self.caught_up_at = datetime.now(UTC) - _READ_MARGIN
        self.refresh()
        self.ready.set()
        log.info(
            "policy %s and scorecard %s in force at start",
            self.current.version,
            self.current_card.version,
        )

    async def poll(self, timeout_ms: int = 1000) -> None:
        """Apply whatever new policy records arrived."""
        assert self._consumer is not None
        started = datetime.now(UTC)
        batches = await self._consumer.getmany(self._tp, timeout_ms=timeout_ms)
        for r in batches.get(self._tp, []):
            self._apply(decode_policy_record(r.offset, r.key, r.value))
        highwater = self._consumer.highwater(self._tp)
        if highwater is not None and await self._consumer.position(self._tp) >= highwater:
            # Everything appended before this poll began (less the fetcher's own lag) is read.
            self.caught_up_at = started - _READ_MARGIN
            self._caught_up.set()
        self.refresh()

    async def stop(self) -> None:
        """Close the consumer."""
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

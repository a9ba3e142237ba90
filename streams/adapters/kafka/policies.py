"""Policies on the compacted ``credit.policy`` topic: publishing, history, and the watcher that
gives every worker the latest valid version without a restart."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import AwareDatetime, BaseModel, ConfigDict

from streams.adapters.kafka.client import client_options, producer_options, start_client
from streams.adapters.kafka.read import read_to_end
from streams.core.policy import InvalidPolicy, Policy, parse_policy, policy_json
from streams.core.timeline import PolicyTimeline
from streams.metrics import Metrics
from streams.settings import Settings
from streams.topics import Topics

log = logging.getLogger(__name__)

#: How stale the data a poll returns may be (aiokafka fetches in the background): a
#: conservative allowance when deciding up to when the topic is known.
_READ_MARGIN = timedelta(seconds=1)


class PolicyEnvelope(BaseModel):
    """One record of the policy topic (key = version)."""

    model_config = ConfigDict(extra="ignore")

    policy: dict[str, Any]
    applied_at: AwareDatetime
    #: When the version takes effect (records written before this field: ``applied_at``).
    effective_from: AwareDatetime | None = None
    applied_by: str | None = None
    comment: str | None = None


@dataclass(frozen=True)
class PolicyRecord:
    """A version found on the policy topic; ``policy`` is None when it was invalid."""

    offset: int
    version: str
    applied_at: datetime | None
    applied_by: str | None
    comment: str | None
    policy: Policy | None
    problems: tuple[str, ...] = ()
    effective_from: datetime | None = None


def policy_timeline(records: Sequence[PolicyRecord], base: Policy) -> PolicyTimeline:
    """The valid versions of a policy history with the instants they take effect (``base``,
    the shipped default, before the first). A version applied twice counts once, from its
    first record: versions are immutable."""
    seen: set[str] = set()
    versions: list[tuple[datetime, Policy]] = []
    for record in records:
        if record.policy is None or record.effective_from is None or record.version in seen:
            continue
        seen.add(record.version)
        versions.append((record.effective_from, record.policy))
    return PolicyTimeline.of(base, versions)


def decode_policy_record(offset: int, key: bytes | None, value: bytes | None) -> PolicyRecord:
    """Parse a policy-topic record; invalid documents are reported, never raised."""
    version = key.decode(errors="replace") if key else "?"
    try:
        envelope = PolicyEnvelope.model_validate_json(value or b"")
    except ValueError as exc:
        return PolicyRecord(offset, version, None, None, None, None, (f"envelope: {exc}",))
    try:
        policy = parse_policy(json.dumps(envelope.policy))
    except InvalidPolicy as exc:
        return PolicyRecord(
            offset,
            version,
            envelope.applied_at,
            envelope.applied_by,
            envelope.comment,
            None,
            tuple(exc.problems),
        )
    return PolicyRecord(
        offset,
        policy.version,
        envelope.applied_at,
        envelope.applied_by,
        envelope.comment,
        policy,
        effective_from=envelope.effective_from or envelope.applied_at,
    )


async def read_policy_history(settings: Settings) -> list[PolicyRecord]:
    """Every policy record, oldest first."""
    topic = Topics.from_settings(settings).policy
    records: list[PolicyRecord] = []
    async for batch in read_to_end(settings, [topic]):
        records.extend(decode_policy_record(r.offset, r.key, r.value) for r in batch)
    return sorted(records, key=lambda r: r.offset)


@dataclass(frozen=True)
class Published:
    """The outcome of :func:`publish_policy`."""

    offset: int
    effective_from: datetime
    #: False when this version was already on the topic (nothing was written).
    new: bool = True


async def read_policy_timeline(settings: Settings, base: Policy) -> PolicyTimeline:
    """The policy versions on the topic with their effective instants (``base`` before)."""
    return policy_timeline(await read_policy_history(settings), base)


async def publish_policy(
    settings: Settings,
    policy: Policy,
    applied_by: str | None = None,
    comment: str | None = None,
    effective_from: datetime | None = None,
) -> Published:
    """Publish a validated policy, in effect from ``effective_from`` (default: the configured
    activation delay from now, so every worker has it by then). Versions are immutable: the
    same version again publishes nothing; with other content it is refused."""
    wanted = policy_json(policy)
    for record in await read_policy_history(settings):
        if record.version != policy.version or record.policy is None:
            continue
        if policy_json(record.policy) != wanted:
            raise InvalidPolicy(
                [
                    f"version {policy.version} was already applied with different content; "
                    "give the changed policy a new version"
                ]
            )
        assert record.effective_from is not None
        return Published(record.offset, record.effective_from, new=False)
    applied_at = datetime.now(UTC)
    activation = timedelta(seconds=settings.policy_activation_seconds)
    effective = effective_from or applied_at + activation
    if effective < applied_at:
        raise InvalidPolicy(["effective_from is in the past: a policy cannot rewrite history"])
    envelope = {
        "policy": policy.model_dump(mode="json"),
        "applied_at": applied_at.isoformat(),
        "effective_from": effective.isoformat(),
        "applied_by": applied_by,
        "comment": comment,
    }
    producer = AIOKafkaProducer(**producer_options(settings))
    await start_client(producer, settings)
    try:
        metadata = await producer.send_and_wait(
            Topics.from_settings(settings).policy,
            json.dumps(envelope, ensure_ascii=False).encode(),
            key=policy.version.encode(),
        )
        return Published(int(metadata.offset), effective)
    finally:
        await producer.stop()


class PolicyWatcher:
    """Follows the policy topic: ``timeline`` holds every valid version with the instant it
    takes effect; ``current`` is the one in force now (or the fallback)."""

    def __init__(self, settings: Settings, metrics: Metrics, fallback: Policy) -> None:
        self.settings = settings
        self.metrics = metrics
        self.fallback = fallback
        self._records: list[PolicyRecord] = []
        self._timeline = PolicyTimeline(fallback)
        self._current = fallback
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
                await asyncio.wait_for(self._caught_up.wait(), remaining)

    def refresh(self) -> None:
        """Show the version in force now (versions take effect at their own instant)."""
        self._set_active(self.current)

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
        if record.policy is None:
            self.metrics.policy_rejected.inc()
            log.error(
                "policy %s at offset %d rejected, keeping %s: %s",
                record.version,
                record.offset,
                self._current.version,
                "; ".join(record.problems),
            )
            return
        self._records.append(record)
        self._timeline = policy_timeline(self._records, self.fallback)
        log.info(
            "policy %s read: in effect from %s",
            record.policy.version,
            record.effective_from.isoformat() if record.effective_from else "?",
        )
        self.refresh()

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
        self.ready.set()
        log.info("policy %s in force at start", self.current.version)

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

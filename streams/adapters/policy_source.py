"""Policies on the compacted ``credit.policy`` topic: publishing, history, and the watcher that
gives every worker the latest valid version without a restart."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import AwareDatetime, BaseModel, ConfigDict

from streams.adapters.kafka_client import client_options, producer_options, start_client
from streams.core.policy import InvalidPolicy, Policy, parse_policy, policy_json
from streams.metrics import Metrics
from streams.settings import Settings
from streams.topics import Topics

log = logging.getLogger(__name__)


class PolicyEnvelope(BaseModel):
    """One record of the policy topic (key = version)."""

    model_config = ConfigDict(extra="ignore")

    policy: dict[str, Any]
    applied_at: AwareDatetime
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
    )


async def read_policy_history(settings: Settings) -> list[PolicyRecord]:
    """Every policy record, oldest first."""
    topic = Topics.from_settings(settings).policy
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False)
    await start_client(consumer, settings)
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        records: list[PolicyRecord] = []
        while await consumer.position(tp) < end:
            batches = await consumer.getmany(tp, timeout_ms=1000)
            for r in batches.get(tp, []):
                records.append(decode_policy_record(r.offset, r.key, r.value))
        return records
    finally:
        await consumer.stop()


async def publish_policy(
    settings: Settings, policy: Policy, applied_by: str | None = None, comment: str | None = None
) -> int:
    """Publish a validated policy; returns its offset. Refuses to reuse a version number for
    a different document (versions are immutable)."""
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
    envelope = {
        "policy": policy.model_dump(mode="json"),
        "applied_at": datetime.now(UTC).isoformat(),
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
        return int(metadata.offset)
    finally:
        await producer.stop()


class PolicyWatcher:
    """Follows the policy topic; ``current`` is the latest valid policy (or the fallback)."""

    def __init__(self, settings: Settings, metrics: Metrics, fallback: Policy) -> None:
        self.settings = settings
        self.metrics = metrics
        self._current = fallback
        self._consumer: AIOKafkaConsumer | None = None
        self._tp = TopicPartition(Topics.from_settings(settings).policy, 0)
        self.ready = asyncio.Event()
        self._set_active(fallback)

    @property
    def current(self) -> Policy:
        """The active policy; one decision or batch uses exactly one version."""
        return self._current

    def _set_active(self, policy: Policy) -> None:
        previous = getattr(self, "_shown_version", None)
        if previous is not None and previous != policy.version:
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
        if record.policy.version != self._current.version:
            log.info("policy %s active (was %s)", record.policy.version, self._current.version)
        self._set_active(record.policy)

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
        self.ready.set()
        log.info("policy %s active at start", self._current.version)

    async def poll(self, timeout_ms: int = 1000) -> None:
        """Apply whatever new policy records arrived."""
        assert self._consumer is not None
        batches = await self._consumer.getmany(self._tp, timeout_ms=timeout_ms)
        for r in batches.get(self._tp, []):
            self._apply(decode_policy_record(r.offset, r.key, r.value))

    async def stop(self) -> None:
        """Close the consumer."""
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

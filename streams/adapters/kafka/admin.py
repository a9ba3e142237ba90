"""Creating and checking creditline's topics, and its consumer groups' offsets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.structs import OffsetAndMetadata

from streams.adapters.kafka.access import assert_authorized
from streams.adapters.kafka.client import client_options, start_client
from streams.adapters.kafka.events import GROUP_ASSIGNOR
from streams.errors import OperatorActionRequired
from streams.settings import Settings
from streams.topics import Topics, TopicSpec

log = logging.getLogger(__name__)

#: Describe errors of a topic created a moment ago (UNKNOWN_TOPIC_OR_PARTITION,
#: LEADER_NOT_AVAILABLE): its metadata has not reached the broker that answered yet.
_NOT_YET = frozenset({3, 5})


class TopicError(OperatorActionRequired):
    """The topics cannot be created or are inconsistent; the message says what to do."""


@dataclass(frozen=True)
class TopicState:
    """A topic as it exists on the broker."""

    name: str
    partitions: int
    created_now: bool


async def ensure_topics(settings: Settings) -> list[TopicState]:
    """Create missing topics (with the configured replication factor and
    min.insync.replicas); fail if the input topics do not share one partition count."""
    specs: list[TopicSpec] = Topics.from_settings(settings).specs(settings)
    timeout_ms = int(settings.kafka_request_timeout_seconds * 1000)
    admin = AIOKafkaAdminClient(**client_options(settings))
    await start_client(admin, settings)
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if missing:
            new = [
                NewTopic(s.name, s.partitions, s.replication_factor, topic_configs=s.config)
                for s in missing
            ]
            # Another process may create them in between: that is fine.
            with contextlib.suppress(TopicAlreadyExistsError):
                answer = (await admin.create_topics(new, timeout_ms=timeout_ms)).to_object()
                # A topic we may not see looks missing: its creation is refused too.
                assert_authorized(
                    settings,
                    "Create (or Describe, if it exists)",
                    {t["topic"]: t["error_code"] for t in answer["topic_errors"]},
                )
        described = await _described_once_created(admin, [s.name for s in specs], timeout_ms)
    finally:
        await admin.close()
    assert_authorized(settings, "Describe", {d["topic"]: d["error_code"] for d in described})
    counts = {d["topic"]: len(d["partitions"]) for d in described}
    created = {s.name for s in missing}
    states = [TopicState(s.name, counts.get(s.name, 0), s.name in created) for s in specs]
    absent = [s.name for s in states if not s.partitions]
    if absent:
        raise TopicError(f"topics still not visible after creating them: {', '.join(absent)}")
    inputs = Topics.from_settings(settings).inputs
    input_counts = {counts.get(name, 0) for name in inputs}
    if len(input_counts) != 1:
        detail = ", ".join(f"{n}={counts.get(n, 0)}" for n in inputs)
        raise TopicError(
            "input topics must share one partition count so that a user's events and "
            f"requests are co-partitioned; found {detail}"
        )
    return states


async def _described_once_created(
    admin: AIOKafkaAdminClient, names: list[str], timeout_ms: int
) -> list[dict[str, Any]]:
    """Describe topics, waiting (bounded) until each just-created one has its partitions: the
    controller answers CreateTopics before every broker's metadata shows them, and a topic
    described too early looks missing (0 partitions)."""
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        described: list[dict[str, Any]] = await admin.describe_topics(names)
        pending = [d for d in described if not d["partitions"] and d["error_code"] in _NOT_YET]
        if not pending or time.monotonic() >= deadline:
            return described
        await asyncio.sleep(0.1)


async def describe_topics(settings: Settings) -> list[TopicState]:
    """creditline's topics as they exist (0 partitions: missing), creating nothing."""
    specs = Topics.from_settings(settings).specs(settings)
    admin = AIOKafkaAdminClient(**client_options(settings))
    await start_client(admin, settings)
    try:
        existing = set(await admin.list_topics())
        present = [s.name for s in specs if s.name in existing]
        described = await admin.describe_topics(present) if present else []
    finally:
        await admin.close()
    assert_authorized(settings, "Describe", {d["topic"]: d["error_code"] for d in described})
    counts = {d["topic"]: len(d["partitions"]) for d in described}
    return [TopicState(s.name, counts.get(s.name, 0), False) for s in specs]


async def adopt_loan_request_offsets(settings: Settings) -> int:
    """Carry loan-request offsets over from the events group to the decisions group, once.

    ``all`` workers used to answer loan requests in the events group (``APP_ID``); they now
    answer them in ``APP_ID-decisions``. Without this, the first upgraded worker would answer
    every retained request again (the same decisions, republished). Does nothing once the
    decisions group has loan-request offsets of its own. Returns the partitions carried over.
    """
    if settings.worker_role == "events":
        return 0
    requests = Topics.from_settings(settings).loan_requests
    admin = AIOKafkaAdminClient(**client_options(settings))
    await start_client(admin, settings)
    try:
        old = await admin.list_consumer_group_offsets(settings.events_group)
        new = await admin.list_consumer_group_offsets(settings.decisions_group)
    finally:
        await admin.close()
    if any(tp.topic == requests and o.offset >= 0 for tp, o in new.items()):
        return 0
    carried = {
        tp: OffsetAndMetadata(o.offset, "")
        for tp, o in old.items()
        if tp.topic == requests and o.offset >= 0
    }
    if not carried:
        return 0
    # A consumer that only assigns partitions commits for the group without joining it.
    consumer = AIOKafkaConsumer(
        **client_options(settings), group_id=settings.decisions_group, enable_auto_commit=False
    )
    await start_client(consumer, settings)
    try:
        consumer.assign(list(carried))
        await consumer.commit(carried)
    finally:
        await consumer.stop()
    log.info(
        "carried loan-request offsets of %d partitions from group %s to %s",
        len(carried),
        settings.events_group,
        settings.decisions_group,
    )
    return len(carried)


#: The protocol name of :data:`~streams.adapters.kafka.events.GROUP_ASSIGNOR` in a group.
GROUP_PROTOCOL: str = GROUP_ASSIGNOR.name


class GroupHeldByOlderWorkers(OperatorActionRequired):
    """A consumer group has members that assign partitions another way."""


async def assert_groups_joinable(settings: Settings) -> None:
    """Raise :class:`GroupHeldByOlderWorkers` when a group this worker joins has members
    assigning partitions with another protocol — workers of a version that read through
    Faust (its own assignor). Kafka refuses a member whose assignor the group does not
    share, so this worker would retry joining for ever while those run; said here, it is
    one line naming the group and what to do."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await start_client(admin, settings)
    try:
        # One group a call: aiokafka 0.14 misreads a DescribeGroups answer of several groups.
        responses = [
            response
            for group in settings.consumer_groups
            for response in await admin.describe_consumer_groups([group])
        ]
    finally:
        await admin.close()
    for response in responses:
        for _, group, _, protocol_type, protocol, members, *_ in response.groups:
            if members and protocol_type == "consumer" and protocol not in ("", GROUP_PROTOCOL):
                raise GroupHeldByOlderWorkers(
                    f"consumer group {group!r} has {len(members)} member(s) assigning partitions "
                    f"with {protocol!r}, not {GROUP_PROTOCOL!r}: workers of a creditline version "
                    "that read through Faust. Stop them, then start this worker "
                    "(docs/operations.md, 'Consumer groups')."
                )

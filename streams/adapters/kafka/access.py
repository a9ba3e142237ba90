"""Whether Kafka's ACLs let this principal do what a worker does, checked before it starts.

Without this a worker missing an ACL waits for ever: aiokafka keeps retrying a consumer
group it may not join, and Faust logs nothing. Each refusal becomes one line naming the
principal, the operation and the resource (the ACL to add), like :func:`kafka_client.explain`.
"""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaError,
    TopicAuthorizationFailedError,
)

from streams.adapters.kafka.client import KafkaAccessError, client_options, start_client
from streams.adapters.kafka.read import topic_partitions
from streams.settings import Settings
from streams.topics import Topics

#: Kafka's error code for a topic the principal may not access.
TOPIC_AUTHORIZATION_FAILED = 29


def refused(settings: Settings, operation: str, resource: str, name: str) -> KafkaAccessError:
    """One line: who was refused what, and the ACL that would allow it."""
    user = settings.kafka_sasl_username or "ANONYMOUS"
    return KafkaAccessError(
        f"Kafka at {settings.kafka_bootstrap_servers} denies User:{user} {operation} on "
        f"{resource} {name!r}: add that ACL (`creditline kafka-acls` prints every ACL "
        "creditline needs)."
    )


async def check_worker_access(settings: Settings) -> None:
    """Raise :class:`KafkaAccessError` unless the worker may join its group and read its
    topics (``Describe`` was checked when its topics were ensured)."""
    topics = Topics.from_settings(settings)
    consumed = {
        "all": (*topics.inputs, topics.policy),
        "events": (*topics.events, topics.policy),
        "decisions": (topics.loan_requests, topics.policy),
    }[settings.worker_role]
    admin = AIOKafkaAdminClient(**client_options(settings))
    await start_client(admin, settings)
    deadline = time.monotonic() + settings.kafka_request_timeout_seconds
    try:
        for group in settings.consumer_groups:
            while True:
                try:
                    # FindCoordinator and OffsetFetch: a group we may not use is refused here.
                    await admin.list_consumer_group_offsets(group)
                    break
                except GroupAuthorizationFailedError:
                    raise refused(settings, "Read", "group", group) from None
                except KafkaError as exc:
                    # A new cluster has no offsets topic (no group coordinator) for a moment.
                    if not exc.retriable or time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.2)
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False)
    await start_client(consumer, settings)
    try:
        # All topics' metadata at once: once a consumer is assigned partitions it only
        # refreshes the metadata of those, and asking for another topic would wait in vain.
        known = await topic_partitions(consumer, consumed)
        first = list({tp.topic: tp for tp in reversed(known)}.values())
        if first:  # a missing topic was reported when the topics were ensured
            consumer.assign(first)
            # A fetch from an explicit offset is authorized like any other. (Seeking to the
            # end would first ask for the end offset and wait for a new topic's leader.)
            for tp in first:
                consumer.seek(tp, 0)
            try:
                await consumer.getmany(*first, timeout_ms=200, max_records=1)
            except TopicAuthorizationFailedError as exc:
                topic = str(exc.args[0]) if exc.args else ", ".join(consumed)
                raise refused(settings, "Read", "topic", topic) from None
    finally:
        await consumer.stop()


def assert_authorized(settings: Settings, operation: str, errors: dict[str, int]) -> None:
    """Raise for the first topic whose error code (from an admin answer) is a refusal."""
    for topic, code in errors.items():
        if code == TOPIC_AUTHORIZATION_FAILED:
            raise refused(settings, operation, "topic", topic)

"""Creating and checking creditline's topics with Kafka's admin API."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from streams.adapters.kafka_access import assert_authorized
from streams.adapters.kafka_client import client_options, start_client
from streams.settings import Settings
from streams.topics import Topics, TopicSpec


class TopicError(RuntimeError):
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
        described = await admin.describe_topics([s.name for s in specs])
    finally:
        await admin.close()
    assert_authorized(settings, "Describe", {d["topic"]: d["error_code"] for d in described})
    counts = {d["topic"]: len(d["partitions"]) for d in described}
    created = {s.name for s in missing}
    states = [TopicState(s.name, counts.get(s.name, 0), s.name in created) for s in specs]
    inputs = Topics.from_settings(settings).inputs
    input_counts = {counts.get(name, 0) for name in inputs}
    if len(input_counts) != 1:
        detail = ", ".join(f"{n}={counts.get(n, 0)}" for n in inputs)
        raise TopicError(
            "input topics must share one partition count so that a user's events and "
            f"requests are co-partitioned; found {detail}"
        )
    return states

"""The Quix Streams peer of ``make bench``: creditline's own core inside Quix Streams.

What a user would build instead of creditline's worker: a Quix Streams application over the
same three event topics (concatenated into one stream, so one user's events share one state),
exactly-once, RocksDB state, 1 s checkpoints, librdkafka fetch tuned for a backlog. Each
record is decoded, deduplicated, folded and scored by the same functions the worker calls
(:meth:`EventFolder.fold_user`), and the user's checkpoint, ledger (searched for the event's id
to deduplicate, as creditline's Redis script does) and the standing's summary are kept in the
state store; status changes go to the line-status topic.

Run by :mod:`bench.peers.quix` in a venv of its own (quixstreams 3.28 caps pydantic below
creditline's pin), with creditline's settings in the environment. Not imported by creditline.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from quixstreams import Application, message_context

from bench.peers import QUIX_GROUP_ENV, QUIX_STATE_DIR_ENV
from streams.adapters.redis.layout import stored_summary
from streams.core.codec import decode_trajectory, encode_trajectory
from streams.core.decoding import RejectedRecord
from streams.core.instants import from_micros, to_micros
from streams.core.ledger import StoredLedger, id_token
from streams.core.policy import load_default_policy
from streams.core.timeline import START, Checkpoint, constant
from streams.metrics import Metrics
from streams.ports import InboundRecord, StoredUser
from streams.service.fold import EventFolder
from streams.service.shell import pending_of
from streams.settings import Settings
from streams.topics import Topics


def _stored(user_id: str, doc: dict[str, Any], maybe_applied: bool, fp: int) -> StoredUser:
    # Binary fields are kept as text, one char per byte: the state store keeps JSON.
    trajectory, state = doc.get("trajectory"), doc.get("state")
    # The fold stays as stored until read, as the worker keeps it: the compiled machine
    # takes the bytes themselves.
    checkpoint = (
        Checkpoint.of_stored(
            decode_trajectory(trajectory.encode("latin-1")),
            user_id,
            state.encode("latin-1") if state else None,
        )
        if trajectory is not None
        else START
    )
    return StoredUser(
        version=doc.get("ver", 0),
        checkpoint=checkpoint,
        already_applied=frozenset((fp,)) if maybe_applied else frozenset(),
        latest_event_at=from_micros(doc["latest"]) if "latest" in doc else None,
        ledger_size=doc.get("size", 0),
        written_at=from_micros(doc["written"]) if "written" in doc else None,
    )


def main() -> None:
    settings = Settings()
    topics = Topics.from_settings(settings)
    folder = EventFolder(settings, None, None, Metrics(), lambda: timelines)  # type: ignore[arg-type]
    timelines = constant(load_default_policy())
    app = Application(
        broker_address=settings.kafka_bootstrap_servers,
        consumer_group=os.environ[QUIX_GROUP_ENV],
        auto_offset_reset="earliest",
        processing_guarantee="exactly-once",
        commit_interval=1.0,
        state_dir=os.environ[QUIX_STATE_DIR_ENV],
        # A backlog is read in large fetches, as a user tuning for throughput would.
        consumer_extra_config={
            "fetch.min.bytes": 65536,
            "fetch.wait.max.ms": 100,
            "queued.min.messages": 100000,
        },
        producer_extra_config={"linger.ms": 5},
    )
    inputs = [
        app.topic(name, key_deserializer="bytes", value_deserializer="bytes")
        for name in topics.events
    ]
    status = app.topic(topics.line_status, key_serializer="bytes", value_serializer="bytes")
    stream = app.dataframe(inputs[0])
    for topic in inputs[1:]:
        stream = stream.concat(app.dataframe(topic))

    def fold(value: bytes, key: bytes, timestamp: int, headers: Any, state: Any) -> Any:
        context = message_context()
        now = datetime.now(UTC)
        record = InboundRecord(
            context.topic,
            context.partition,
            context.offset,
            key,
            value,
            timestamp / 1000,
            tuple(headers or ()),
        )
        try:  # the same way in as creditline's fold
            pending = pending_of(
                record, topics.kind_of(record.topic), now=now, limits=folder.limits
            )
        except RejectedRecord:
            return None  # the bench's load has none; creditline would dead-letter it
        event, fp = pending.event, pending.fingerprint
        doc: dict[str, Any] = state.get("user") or {}
        # The ledger's bytes as text, one char per byte: the state store keeps JSON.
        raw_ledger: str = state.get("ledger") or ""
        maybe_applied = id_token(event.event_id).decode("latin-1") in raw_ledger
        current = _stored(event.user_id, doc, maybe_applied, fp)
        ledger = (
            StoredLedger(raw_ledger.encode("latin-1"), event.user_id)
            if folder.reads_ledger(current, [pending], now)
            else None
        )
        outcome = folder.fold_user(event.user_id, current, [pending], ledger, timelines, now)
        write = outcome.write
        if write is None:
            return None
        entries = b"".join(write.entries).decode("latin-1")
        state.set("ledger", entries if write.rewrite else raw_ledger + entries)
        checkpoint = write.checkpoint
        new: dict[str, Any] = {
            "ver": write.expected_version + 1,
            "trajectory": encode_trajectory(checkpoint.trajectory).decode("latin-1"),
            "size": write.ledger_size,
        }
        stored = checkpoint.stored_state()
        if stored is not None:
            new["state"] = stored.decode("latin-1")
        if write.latest_event_at is not None:
            new["latest"] = to_micros(write.latest_event_at)
        if write.written_at is not None:
            new["written"] = to_micros(write.written_at)
        summary = stored_summary(checkpoint.trajectory)
        state.set("user", new | summary)
        return write.status_event

    changes = stream.apply(fold, stateful=True, metadata=True)
    changes.filter(lambda value: value is not None).to_topic(status)
    app.run()


if __name__ == "__main__":
    main()

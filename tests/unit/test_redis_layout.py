"""The Redis layout is written down once, and the store uses nothing else."""

from __future__ import annotations

import re

import orjson

from streams.adapters.redis import layout
from streams.adapters.redis.store import RedisStore
from streams.ports import UserWrite
from tests.builders import spending
from tests.checkpoints import checkpoint_of


def test_every_field_the_store_writes_is_documented() -> None:
    checkpoint = checkpoint_of([spending()])
    write = UserWrite(
        "u-1",
        0,
        checkpoint,
        status_event=b"{}",
        latest_event_at=checkpoint.at,
        written_at=checkpoint.at,
        at_capacity="events",
    )
    fields = orjson.loads(RedisStore._write_arguments(write)[1])
    # Binary fields go apart from the JSON of text fields (the ledger appended or replaced).
    assert set(fields[0::2]) | {"ledger", "state", "trajectory"} == set(layout.STATE_FIELDS)


def test_every_field_the_scripts_read_is_documented() -> None:
    read = set(re.findall(r"'([a-z_]+)'", layout.LOAD.source))
    read |= set(re.findall(r"'([a-z_]+)'", layout.APPLY.source))
    read |= set(re.findall(r"'([a-z_]+)'", layout.LEDGERS.source))
    read -= {"HMGET", "HGET", "HSET"}
    assert read <= set(layout.STATE_FIELDS)
    assert layout.OUTBOX_FIELD in layout.STATE_FIELDS
    assert set(layout.SCRIPTS) == {"LOAD", "LEDGERS", "APPLY", "CLEAR_IF_EQUAL", "SCHEDULE_POLICY"}

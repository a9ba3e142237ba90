"""A user's accepted events, kept compactly so that the past can be recomputed exactly.

The status trajectory is a function of every event in the horizon window
(:mod:`streams.core.timeline`); when an event arrives late and lands in the past, the review
instants after it are recomputed from these entries. An entry keeps exactly what the fold
reads, the event id (canonical order and last-writer-wins ties) and a digest of the whole
event (a re-sent ``event_id`` with other content is a conflict, not a duplicate).

Entry (compact JSON array, one per event):

* ``["r", micros, event_id, digest, loan_id, due, paid, days_past_due, balance]``
* ``["s", micros, event_id, digest, amount]``
* ``["a", micros, event_id, digest, asset_type, value, verified]``

Money is a decimal string, ``micros`` integer microseconds since the epoch (UTC).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import orjson

from schemas.models import AssetEvent, AssetType, InputEvent, RepaymentEvent, SpendingEvent
from streams.core.codec import from_micros, to_micros

_KIND = {RepaymentEvent: "r", SpendingEvent: "s", AssetEvent: "a"}


def fingerprint(event_id: str) -> int:
    """A signed 64-bit digest of an event id: Redis keeps sets of these as compact intsets.

    Collisions need ~2**32 events for one user, so they are not a practical concern.
    """
    digest = hashlib.blake2b(event_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def content_digest(event: InputEvent) -> int:
    """A 64-bit digest of everything an event says, including which topic it came from.

    Two deliveries of one event have the same digest (unknown fields are not part of the
    event); the same ``event_id`` with other content or on another topic has another.
    """
    body = _KIND[type(event)].encode() + event.model_dump_json().encode()
    return int.from_bytes(hashlib.blake2b(body, digest_size=8).digest(), "big", signed=True)


def encode_entry(event: InputEvent, digest: int | None = None) -> bytes:
    """The ledger entry of an event."""
    head: list[Any] = [
        _KIND[type(event)],
        to_micros(event.occurred_at),
        event.event_id,
        content_digest(event) if digest is None else digest,
    ]
    if isinstance(event, RepaymentEvent):
        head += [
            event.loan_id,
            str(event.amount_due),
            str(event.amount_paid),
            event.days_past_due,
            str(event.outstanding_balance),
        ]
    elif isinstance(event, SpendingEvent):
        head.append(str(event.amount))
    else:
        head += [event.asset_type.value, str(event.value), event.verified]
    return orjson.dumps(head)


def decode_entry(raw: bytes | str, user_id: str) -> tuple[InputEvent, int]:
    """An entry back as the event the fold reads (validated when it was accepted, so it is
    rebuilt without validating again) and its content digest."""
    doc = orjson.loads(raw)
    kind, micros, event_id, digest = doc[0], doc[1], doc[2], doc[3]
    occurred = from_micros(micros)
    event: InputEvent
    if kind == "r":
        event = RepaymentEvent.model_construct(
            event_id=event_id,
            user_id=user_id,
            occurred_at=occurred,
            loan_id=doc[4],
            amount_due=Decimal(doc[5]),
            amount_paid=Decimal(doc[6]),
            days_past_due=doc[7],
            outstanding_balance=Decimal(doc[8]),
        )
    elif kind == "s":
        event = SpendingEvent.model_construct(
            event_id=event_id,
            user_id=user_id,
            occurred_at=occurred,
            amount=Decimal(doc[4]),
            category="unknown",
            merchant_id=None,
        )
    elif kind == "a":
        event = AssetEvent.model_construct(
            event_id=event_id,
            user_id=user_id,
            occurred_at=occurred,
            asset_type=AssetType(doc[4]),
            value=Decimal(doc[5]),
            verified=bool(doc[6]),
        )
    else:
        raise ValueError(f"unknown ledger entry kind {kind!r}")
    return event, int(digest)


def decode_ledger(raws: Iterable[bytes | str], user_id: str) -> dict[int, tuple[InputEvent, int]]:
    """A stored ledger by event fingerprint: (event, content digest)."""
    entries: dict[int, tuple[InputEvent, int]] = {}
    for raw in raws:
        event, digest = decode_entry(raw, user_id)
        entries[fingerprint(event.event_id)] = (event, digest)
    return entries

"""A user's accepted events, kept compactly so that the past can be recomputed exactly.

The status trajectory is a function of every event in the horizon window
(:mod:`streams.core.timeline`); when an event arrives late and lands in the past, the review
instants after it are recomputed from these entries. An entry keeps exactly what the fold
reads, the event id (canonical order and last-writer-wins ties) and a digest of the whole
event (a re-sent ``event_id`` with other content is a conflict, not a duplicate).

A ledger is its entries concatenated (one Redis value: appending is a string append). An
entry is binary and self-delimiting, big-endian:

* head: kind (``r``, ``s`` or ``a``, one byte), ``occurred_at`` (int64 microseconds since
  the epoch, UTC), the content digest (int64), then the event id (``text``);
* ``r`` (repayment): ``loan_id`` (text), ``amount_due``, ``amount_paid`` (money),
  ``days_past_due`` (varint), ``outstanding_balance`` (money);
* ``s`` (spending): ``amount`` (money);
* ``a`` (asset): ``asset_type`` (text), ``value`` (money), ``verified`` (one byte, 0 or 1).

The primitives are :mod:`streams.core.binary`'s. Money is kept exactly as given (trailing
zeros too), so the fold reads the very decimal it was accepted with. About a third of the
compact JSON it replaced.

Deduplication searches a ledger for an event id as it appears in an entry
(:func:`id_token`): a found token may be a false match elsewhere in the bytes, so it only
means "read the ledger", where the entry's id decides.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from datetime import datetime
from operator import itemgetter
from typing import TYPE_CHECKING

from schemas.models import AssetEvent, AssetType, InputEvent, RepaymentEvent, SpendingEvent
from streams.core import binary, compiled
from streams.core.instants import from_micros, to_micros

if TYPE_CHECKING:
    from creditline_native import EventArgs

_KIND = {RepaymentEvent: "r", SpendingEvent: "s", AssetEvent: "a"}


def fingerprint(event_id: str) -> int:
    """A signed 64-bit digest of an event id (what deduplication compares).

    Collisions need ~2**32 events for one user, so they are not a practical concern.
    """
    digest = hashlib.blake2b(event_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def content_digest(event: InputEvent) -> int:
    """A 64-bit digest of everything an event says, including which topic it came from.

    Two deliveries of one event have the same digest (unknown fields are not part of the
    event); the same ``event_id`` with other content or on another topic has another.
    """
    return digest_of_json(type(event), event.model_dump_json().encode())


def digest_of_json(model: type[InputEvent], canonical: bytes) -> int:
    """:func:`content_digest` of an event of type ``model`` whose ``model_dump_json`` is
    ``canonical``."""
    body = _KIND[model].encode() + canonical
    return int.from_bytes(hashlib.blake2b(body, digest_size=8).digest(), "big", signed=True)


_HEAD = struct.Struct(">cqq")  # kind, occurred_at micros, content digest


def id_token(event_id: str) -> bytes:
    """How an event id appears in its ledger entry (its length byte, then the id)."""
    return binary.text(event_id)


def entry_of(model: type[InputEvent], occurred_micros: int, digest: int, tail: bytes) -> bytes:
    """:func:`encode_entry` of an event of type ``model`` given its parts: the head (kind,
    instant, digest) and the rest (``tail``: the event id and the kind's fields, as
    :func:`encode_entry` writes them)."""
    return _HEAD.pack(_KIND[model].encode(), occurred_micros, digest) + tail


def encode_entry(event: InputEvent, digest: int | None = None) -> bytes:
    """The ledger entry of an event (binary, self-delimiting)."""
    parts = [
        _HEAD.pack(
            _KIND[type(event)].encode(),
            to_micros(event.occurred_at),
            content_digest(event) if digest is None else digest,
        ),
        binary.text(event.event_id),
    ]
    if isinstance(event, RepaymentEvent):
        parts += [
            binary.text(event.loan_id),
            binary.money(event.amount_due),
            binary.money(event.amount_paid),
            binary.varint(event.days_past_due),
            binary.money(event.outstanding_balance),
        ]
    elif isinstance(event, SpendingEvent):
        parts.append(binary.money(event.amount))
    else:
        parts += [
            binary.text(event.asset_type.value),
            binary.money(event.value),
            b"\x01" if event.verified else b"\x00",
        ]
    return b"".join(parts)


def _read_entry(reader: binary.Reader, user_id: str) -> tuple[InputEvent, int]:
    kind, micros, digest = _HEAD.unpack_from(reader.data, reader.at)
    reader.at += _HEAD.size
    event_id = reader.text()
    occurred = from_micros(micros)
    event: InputEvent
    # Validated when it was accepted: rebuilt without validating again.
    if kind == b"r":
        event = RepaymentEvent.model_construct(
            event_id=event_id,
            user_id=user_id,
            occurred_at=occurred,
            loan_id=reader.text(),
            amount_due=reader.money(),
            amount_paid=reader.money(),
            days_past_due=reader.varint(),
            outstanding_balance=reader.money(),
        )
    elif kind == b"s":
        event = SpendingEvent.model_construct(
            event_id=event_id,
            user_id=user_id,
            occurred_at=occurred,
            amount=reader.money(),
            category="unknown",
            merchant_id=None,
        )
    elif kind == b"a":
        event = AssetEvent.model_construct(
            event_id=event_id,
            user_id=user_id,
            occurred_at=occurred,
            asset_type=AssetType(reader.text()),
            value=reader.money(),
            verified=bool(reader.byte()),
        )
    else:
        raise ValueError(f"unknown ledger entry kind {kind!r}")
    return event, int(digest)


def _entries(blob: bytes, user_id: str) -> Iterator[tuple[int, int, InputEvent, int]]:
    """Each entry of a ledger: (start, end, event, content digest)."""
    reader = binary.Reader(bytes(blob))
    while not reader.done():
        start = reader.at
        event, digest = _read_entry(reader, user_id)
        yield start, reader.at, event, digest


def decode_entry(raw: bytes, user_id: str) -> tuple[InputEvent, int]:
    """One entry back as the event the fold reads and its content digest."""
    reader = binary.Reader(bytes(raw))
    decoded = _read_entry(reader, user_id)
    if not reader.done():
        raise ValueError("trailing bytes after a ledger entry")
    return decoded


def split_entries(blob: bytes) -> list[bytes]:
    """A ledger's entries, each as :func:`encode_entry` wrote it."""
    return [blob[start:end] for start, end, _, _ in _entries(blob, "")]


#: An entry's instant and event id, as the compiled machine takes it (:func:`compiled.pack_event`).
_INSTANT, _EVENT_ID = itemgetter(0), itemgetter(2)


class StoredLedger:
    """A user's ledger as read from the store, decoded only as far as it is used.

    A late event needs the user's whole history; the compiled status machine reads the
    entries straight from the bytes (:meth:`packed`), so Python events are built only where
    Python needs them: a fallback (:meth:`events`); the few loan and asset snapshots the
    fold keeps are read from their entries alone (:meth:`snapshot`).
    """

    __slots__ = ("_decoded", "_packed", "_packed_read", "blob", "user_id")

    def __init__(self, blob: bytes, user_id: str) -> None:
        self.blob = bytes(blob)
        self.user_id = user_id
        self._decoded: list[tuple[int, int, InputEvent, int]] | None = None
        self._packed: tuple[list[EventArgs], list[int], list[int]] | None = None
        self._packed_read = False

    def _decoded_entries(self) -> list[tuple[int, int, InputEvent, int]]:
        if self._decoded is None:
            self._decoded = list(_entries(self.blob, self.user_id))
        return self._decoded

    def packed(self) -> tuple[list[EventArgs], list[int], list[int]] | None:
        """The entries as the compiled machine takes them (in stored order), their content
        digests and end offsets; None when it is off or cannot read them exactly."""
        if not self._packed_read:
            self._packed = compiled.pack_ledger(self.blob)
            self._packed_read = True
        return self._packed

    def events(self) -> list[InputEvent]:
        """Every event, in stored order."""
        return [event for _, _, event, _ in self._decoded_entries()]

    def digests(self) -> dict[str, int]:
        """Each stored event id's content digest."""
        packed = self.packed()
        if packed is not None:
            return dict(zip(map(_EVENT_ID, packed[0]), packed[1], strict=True))
        return {event.event_id: digest for _, _, event, digest in self._decoded_entries()}

    def kept_after(self, limit: datetime) -> tuple[bytes, int] | None:
        """The entries dated after ``limit`` as stored, and how many: None when no entry is
        dated at or before it (nothing leaves the ledger)."""
        packed = self.packed()
        spans: list[tuple[int, int, bool]] = []
        if packed is not None:
            bound, start = to_micros(limit), 0
            if not packed[0] or min(map(_INSTANT, packed[0])) > bound:
                return None  # the common case, told without building the spans
            for args, end in zip(packed[0], packed[2], strict=True):
                spans.append((start, end, args[0] > bound))
                start = end
        else:
            spans = [
                (a, b, event.occurred_at > limit) for a, b, event, _ in self._decoded_entries()
            ]
        if all(kept for _, _, kept in spans):
            return None
        kept_spans = [(a, b) for a, b, kept in spans if kept]
        return b"".join(self.blob[a:b] for a, b in kept_spans), len(kept_spans)

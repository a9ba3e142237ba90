"""Event records of the plain shape, decoded by the compiled part (``native/src/decode.rs``).

Decoding an event record in Python (the JSON read with exact decimals, the model validated,
its canonical JSON dumped for the content digest, its ledger entry encoded) cost ~36 µs of
a fold's ~220 µs per event. Most records are plain: a flat object of ASCII text, each field
of the type and range the model wants. :func:`decode_plain` reads those in one compiled
call and builds the model without validating it again; any other record (hostile, unusual
or refused) answers None and :func:`streams.core.decoding.decode_record` decodes it, so
every refusal, with its code and message, still comes from Python.
``tests/unit/test_plain_records.py`` holds the event, digest and entry equal to Python's for
drawn records, plain and not.

Used when the extension is installed and the compiled core is on
(:func:`streams.core.compiled.active`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from schemas.models import AssetEvent, AssetType, InputEvent, RepaymentEvent, SpendingEvent
from streams.core import compiled
from streams.core.decoding import DecodeLimits, RecordKind
from streams.core.instants import from_micros
from streams.core.ledger import digest_of_json, entry_of

try:
    import creditline_native as _native
except ImportError:  # not built: every record is decoded in Python
    _native = None  # type: ignore[assignment]

#: The compiled decoder's kind codes.
_CODE = {RecordKind.REPAYMENT: 0, RecordKind.SPENDING: 1, RecordKind.ASSET: 2}
_ASSET_TYPES = {member.value: member for member in AssetType}
_new = object.__new__
_set = object.__setattr__


class PlainEvent(NamedTuple):
    """A plain record decoded: the event, its content digest and its ledger entry (a named
    tuple: one per record, and a frozen dataclass takes twice as long to make)."""

    event: InputEvent
    digest: int
    entry: bytes


#: Every field of a decoded event counts as set, defaults included (creditline never dumps
#: only the fields set): one set per model, shared by all its events rather than one each
#: (two allocations, ~0.5 KiB an event that a batch holds to its end). Sharing is safe: a
#: frozen model refuses assignment before it would add to the set, and a copy copies it.
_FIELDS_SET: dict[type[InputEvent], set[str]] = {
    model: set(model.model_fields) for model in (RepaymentEvent, SpendingEvent, AssetEvent)
}


def _model(cls: type[InputEvent], fields: dict[str, Any]) -> InputEvent:
    # What model_construct does, without its per-field loop (a third of the saving): the
    # values are exactly those validation gives (a unit test compares them).
    event = _new(cls)
    _set(event, "__dict__", fields)
    _set(event, "__pydantic_fields_set__", _FIELDS_SET[cls])
    _set(event, "__pydantic_extra__", None)
    _set(event, "__pydantic_private__", None)
    return event


def decode_plain(
    kind: RecordKind,
    key: bytes | None,
    value: bytes | None,
    *,
    now: datetime,
    limits: DecodeLimits,
    headers: Sequence[tuple[str, object]] = (),
) -> PlainEvent | None:
    """A plain event record decoded as :func:`streams.core.decoding.decode_record` would,
    with its digest and ledger entry; None when Python must decode it (not plain, or
    refused: the key, a header name, the size or the time window)."""
    code = _CODE.get(kind)
    if (
        code is None
        or value is None
        or not key
        or len(value) > limits.max_record_bytes
        or not compiled.active()
        or not all(name.isascii() for name, _ in headers)
    ):
        return None
    decoded = _native.decode_plain(code, value)
    if decoded is None:
        return None
    event_id, user_id, micros, rest, canonical, tail = decoded
    occurred = from_micros(micros)
    if (
        key != user_id.encode()
        or occurred > now + limits.future_tolerance
        or occurred < now - limits.horizon
    ):
        return None
    # One dict literal a kind: merging into a common one made a second dict and grew the first.
    fields: dict[str, Any]
    model: type[InputEvent]
    if kind is RecordKind.REPAYMENT:
        model = RepaymentEvent
        loan_id, due, paid, days, balance = rest
        fields = {
            "event_id": event_id,
            "user_id": user_id,
            "occurred_at": occurred,
            "loan_id": loan_id,
            "amount_due": Decimal(due),
            "amount_paid": Decimal(paid),
            "days_past_due": days,
            "outstanding_balance": Decimal(balance),
        }
    elif kind is RecordKind.SPENDING:
        model = SpendingEvent
        amount, category, merchant_id = rest
        fields = {
            "event_id": event_id,
            "user_id": user_id,
            "occurred_at": occurred,
            "amount": Decimal(amount),
            "category": category,
            "merchant_id": merchant_id,
        }
    else:
        model = AssetEvent
        asset_type, amount, verified = rest
        fields = {
            "event_id": event_id,
            "user_id": user_id,
            "occurred_at": occurred,
            "asset_type": _ASSET_TYPES[asset_type],
            "value": Decimal(amount),
            "verified": verified,
        }
    digest = digest_of_json(model, canonical)
    return PlainEvent(_model(model, fields), digest, entry_of(model, micros, digest, tail))

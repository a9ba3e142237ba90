"""The binary ledger: every event the fold reads comes back exactly, entry by entry."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.models import AssetEvent, AssetType, InputEvent, RepaymentEvent, SpendingEvent
from streams.core import binary
from streams.core.ledger import (
    StoredLedger,
    content_digest,
    decode_entry,
    encode_entry,
    id_token,
    split_entries,
)
from tests.builders import asset, repayment, spending

_EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
ids = st.from_regex(r"[A-Za-z0-9._:-]{1,64}", fullmatch=True)
# What the schema accepts, with the trailing zeros a producer may send ("7.500").
amounts = st.builds(
    lambda units, cents, zeros: Decimal(f"{units}.{cents:02d}" + "0" * zeros),
    st.integers(0, 10_000_000_000 - 1),
    st.integers(0, 99),
    st.integers(0, 3),
) | st.sampled_from(
    [Decimal("0"), Decimal("-0.00"), Decimal("10000000000"), Decimal("7.5"), Decimal("1.2E+3")]
)
instants = st.integers(0, 3_000 * 86_400_000_000).map(
    lambda micros: _EPOCH + timedelta(microseconds=micros)
)


@st.composite
def events(draw: st.DrawFn) -> InputEvent:
    common: dict[str, Any] = {
        "event_id": draw(ids),
        "user_id": "u-1",
        "occurred_at": draw(instants),
    }
    kind = draw(st.sampled_from("rsa"))
    if kind == "r":
        return RepaymentEvent.model_construct(
            **common,
            loan_id=draw(ids),
            amount_due=draw(amounts),
            amount_paid=draw(amounts),
            days_past_due=draw(st.integers(0, 36_500)),
            outstanding_balance=draw(amounts),
        )
    if kind == "s":
        return SpendingEvent.model_construct(
            **common,
            amount=draw(amounts.filter(bool)),
            category="unknown",
            merchant_id=None,
        )
    return AssetEvent.model_construct(
        **common,
        asset_type=draw(st.sampled_from(list(AssetType))),
        value=draw(amounts),
        verified=draw(st.booleans()),
    )


def _same(a: InputEvent, b: InputEvent) -> None:
    """Equal as the fold reads them: same fields, and every decimal with the same text."""
    assert type(a) is type(b)
    for name in type(a).model_fields:
        if name in {"category", "merchant_id"}:
            continue  # not read by the fold, not kept
        left, right = getattr(a, name), getattr(b, name)
        assert left == right, name
        assert str(left) == str(right), name


@given(event=events(), digest=st.integers(-(2**63), 2**63 - 1))
def test_an_entry_decodes_to_the_event_it_was_made_from(event: InputEvent, digest: int) -> None:
    decoded, got = decode_entry(encode_entry(event, digest), "u-1")
    assert got == digest
    _same(decoded, event)


@given(history=st.lists(events(), max_size=30))
def test_a_ledger_is_its_entries_concatenated(history: list[InputEvent]) -> None:
    entries = [encode_entry(e, i) for i, e in enumerate(history)]
    blob = b"".join(entries)
    assert split_entries(blob) == entries
    for event in history:
        assert id_token(event.event_id) in blob
    ledger = StoredLedger(blob, "u-1")
    latest = {e.event_id: i for i, e in enumerate(history)}
    assert ledger.digests() == latest
    assert len(ledger.events()) == len(history)
    for event, original in zip(ledger.events(), history, strict=True):
        _same(event, original)


@pytest.mark.parametrize("packed", [True, False], ids=["compiled", "python"])
@given(history=st.lists(events(), max_size=30), limit=instants)
def test_what_stays_in_the_window_is_copied_as_stored(
    packed: bool, history: list[InputEvent], limit: datetime
) -> None:
    entries = [encode_entry(e, i) for i, e in enumerate(history)]
    ledger = StoredLedger(b"".join(entries), "u-1")
    if not packed:
        ledger.events()  # decoded in Python: every view then reads the decoded entries
    kept = [raw for raw, e in zip(entries, history, strict=True) if e.occurred_at > limit]
    if len(kept) == len(history):
        assert ledger.kept_after(limit) is None
    else:
        assert ledger.kept_after(limit) == (b"".join(kept), len(kept))


def test_money_is_kept_exactly_in_a_few_bytes() -> None:
    for text, size in [("2800.00", 4), ("67.30", 3), ("0.00", 2), ("10000000000.00", 7)]:
        event = spending(event_id="s-1").model_copy(update={"amount": Decimal(text)})
        raw = encode_entry(event)
        decoded, _ = decode_entry(raw, "u-1")
        assert isinstance(decoded, SpendingEvent)
        assert str(decoded.amount) == text
        assert len(raw) - 17 - len(id_token("s-1")) == size, text


def test_money_beyond_a_signed_byte_of_exponent_is_refused() -> None:
    event = spending(event_id="s-1").model_copy(update={"amount": Decimal("7.5" + "0" * 200)})
    with pytest.raises(ValueError, match="money out of range"):
        encode_entry(event)


def test_entries_are_smaller_than_the_compact_json_they_replace() -> None:
    samples: list[InputEvent] = [
        repayment(event_id="e11-11800", loan_id="b0001677-l"),
        spending(event_id="e11-3267"),
        asset(event_id="e11-4410"),
    ]
    for event in samples:
        as_json = json.dumps(
            [event.occurred_at.timestamp(), event.event_id, content_digest(event)]
            + [str(v) for k, v in event.model_dump().items() if k not in {"event_id", "user_id"}],
            separators=(",", ":"),
        )
        assert len(encode_entry(event)) < 0.75 * len(as_json), event


def test_the_default_digest_is_the_events_content_digest() -> None:
    event = spending(event_id="s-1")
    assert decode_entry(encode_entry(event), "u-1")[1] == content_digest(event)


@pytest.mark.parametrize(
    "damage",
    [lambda raw: raw[:-1], lambda raw: raw + b"\x00", lambda raw: b"x" + raw[1:]],
    ids=["truncated", "trailing", "unknown kind"],
)
def test_a_damaged_entry_is_refused(damage: object) -> None:
    raw = encode_entry(repayment(event_id="r-1"))
    with pytest.raises((ValueError, IndexError)):
        decode_entry(damage(raw), "u-1")  # type: ignore[operator]


def test_text_longer_than_a_length_byte_is_refused() -> None:
    event = spending(event_id="s-1").model_copy(update={"event_id": "x" * 256})
    with pytest.raises(ValueError, match="longer than 255"):
        encode_entry(event)


def test_the_primitives_write_the_documented_bytes() -> None:
    assert [binary.varint(n) for n in (0, 127, 128, 300)] == [
        b"\x00",
        b"\x7f",
        b"\x80\x01",
        b"\xac\x02",
    ]
    # 2800.00: coefficient 280000, sign 0 → varint(560000), then exponent -2 as a byte.
    assert binary.money(Decimal("2800.00")) == b"\x80\x97\x22\xfe"
    assert binary.money(Decimal("-0.5")) == b"\x0b\xff"
    with pytest.raises(ValueError, match="unsigned"):
        binary.varint(-1)

"""Plain event records decoded by the compiled part give what Python's decoding gives.

For every record, drawn or hostile: either :func:`decode_plain` declines (None) or Python
accepts the record too, and the event, its JSON, its content digest and its ledger entry
are the same. Every refusal comes from Python (the compiled part never refuses).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bench.workload import bench_records
from schemas.models import SpendingEvent
from streams.core import compiled
from streams.core.decoding import DecodeLimits, RecordKind, RejectedRecord, decode_record
from streams.core.ledger import content_digest, encode_entry
from streams.core.plain_records import decode_plain
from streams.core.policy import load_default_policy
from streams.core.timeline import constant
from streams.metrics import Metrics
from streams.ports import InboundRecord
from streams.service import shell as shell_module
from streams.service.fold import EventFolder
from streams.settings import Settings
from tests.builders import NOW, asset_doc, encode, repayment_doc, spending_doc, ts
from tests.corpus import bad_corpus
from tests.properties import examples
from tests.unit.fakes import FakeSink, FakeStore

native = pytest.importorskip("creditline_native")

LIMITS = DecodeLimits(max_record_bytes=64 * 1024)
EVENT_KINDS = (RecordKind.REPAYMENT, RecordKind.SPENDING, RecordKind.ASSET)
SETTINGS = Settings.model_construct(**Settings().model_dump())
TIMELINE = constant(load_default_policy())
#: bench_records dates events up to a minute before the wall clock.
FOLDED_AT = datetime.now(NOW.tzinfo)


def assert_same_as_python(
    kind: RecordKind, value: bytes, key: bytes = b"u-1", headers: Any = ()
) -> bool:
    """Compare both ways of decoding one record; True when the compiled part decoded it."""
    plain = decode_plain(kind, key, value, now=NOW, limits=LIMITS, headers=headers)
    try:
        expected = decode_record(kind, key, value, now=NOW, limits=LIMITS, headers=headers)
    except RejectedRecord:
        assert plain is None, "a record Python refuses was decoded"
        return False
    if plain is None:
        return False
    assert plain.event == expected
    assert type(plain.event) is type(expected)
    assert plain.event.model_dump_json() == expected.model_dump_json()
    assert plain.event.model_dump() == expected.model_dump()
    assert plain.event.occurred_at.utcoffset() == timedelta(0)
    assert plain.event.model_fields_set == set(type(expected).model_fields)
    digest = content_digest(expected)
    assert plain.digest == digest
    assert plain.entry == encode_entry(expected, digest)
    return True


def test_decoded_events_share_one_fields_set_that_neither_assignment_nor_a_copy_changes() -> None:
    first = decode_plain(
        RecordKind.SPENDING, b"u-1", encode(spending_doc()), now=NOW, limits=LIMITS
    )
    second = decode_plain(
        RecordKind.SPENDING, b"u-1", encode(spending_doc(event_id="s-2")), now=NOW, limits=LIMITS
    )
    assert first is not None and second is not None
    shared = first.event.model_fields_set
    assert second.event.model_fields_set is shared
    before = set(shared)
    with pytest.raises(ValidationError, match="frozen"):
        first.event.event_id = "s-9"  # type: ignore[misc]
    copied = first.event.model_copy(update={"event_id": "s-3"})
    assert copied.event_id == "s-3" and first.event.event_id != "s-3"
    assert copied.model_fields_set is not shared
    assert shared == before == set(SpendingEvent.model_fields)


def test_plain_records_of_each_kind_are_decoded_here() -> None:
    for kind, doc in [
        (RecordKind.REPAYMENT, repayment_doc()),
        (RecordKind.SPENDING, spending_doc()),
        (RecordKind.SPENDING, spending_doc(merchant_id=None)),
        (RecordKind.ASSET, asset_doc()),
        (RecordKind.ASSET, asset_doc(verified=False)),
    ]:
        assert assert_same_as_python(kind, json.dumps(doc).encode())
    without = spending_doc()
    del without["merchant_id"]
    assert assert_same_as_python(RecordKind.SPENDING, json.dumps(without).encode())


def test_every_bad_record_of_the_corpus_is_left_to_python() -> None:
    for case in bad_corpus(NOW):
        if case.value is None:
            continue
        plain = decode_plain(case.kind, case.key, case.value, now=NOW, limits=LIMITS)
        assert plain is None, case.name


@pytest.mark.parametrize(
    "value",
    [
        # Each is valid for Python but outside the plain shape, or refused by it.
        b'{"event_id":"s-1","event_id":"s-1","user_id":"u-1","occurred_at":"%s",'
        b'"amount":"1.00","category":"food"}',
        b'{"event_id":"s\\u002d1","user_id":"u-1","occurred_at":"%s","amount":"1.00",'
        b'"category":"food"}',
        b'{"event_id":"s-1","user_id":"u-1","occurred_at":"%s","amount":"1.00",'
        b'"category":"food","extra":{"nested":1}}',
        b'{"event_id":"s-1","user_id":"u-1","occurred_at":"%s","amount":1e2,"category":"food"}',
        b'{"event_id":"s-1","user_id":"u-1","occurred_at":"%s","amount":"1.001","category":"food"}',
        b'{"event_id":"s-1","user_id":"u-1","occurred_at":"%s","amount":"0.00","category":"food"}',
        b'{"event_id":"s-1","user_id":"u-1","occurred_at":"%s","amount":01,"category":"food"}',
        b'{"event_id":"s-1","user_id":"u-1","occurred_at":"%s","amount":"1.00","category":"Food"}',
        b'{"event_id":"s-1","user_id":"u-1","occurred_at":"%s","amount":"1.00",'
        b'"category":"food","merchant_id":""}',
        b'{"event_id":"s-1","user_id":"u-1","occurred_at":"%s","amount":"1.00",'
        b'"category":"food"} x',
        b'\xef\xbb\xbf{"event_id":"s-1","user_id":"u-1","occurred_at":"%s","amount":"1.00",'
        b'"category":"food"}',
    ],
)
def test_records_outside_the_plain_shape_are_left_to_python(value: bytes) -> None:
    record = value.replace(b"%s", ts(1).encode())
    assert not assert_same_as_python(RecordKind.SPENDING, record)


def test_the_key_headers_window_and_switch_are_checked_before_anything_is_decoded() -> None:
    value = json.dumps(spending_doc()).encode()
    assert decode_plain(RecordKind.SPENDING, b"u-2", value, now=NOW, limits=LIMITS) is None
    headers = [("bad\udcff", b"")]
    assert not assert_same_as_python(RecordKind.SPENDING, value, headers=headers)
    future = json.dumps(spending_doc(occurred_at=ts(-1))).encode()
    assert not assert_same_as_python(RecordKind.SPENDING, future)
    ancient = json.dumps(spending_doc(occurred_at=ts(4000))).encode()
    assert not assert_same_as_python(RecordKind.SPENDING, ancient)
    assert decode_plain(RecordKind.LOAN_REQUEST, b"u-1", value, now=NOW, limits=LIMITS) is None
    compiled.use_compiled(False)
    try:
        assert decode_plain(RecordKind.SPENDING, b"u-1", value, now=NOW, limits=LIMITS) is None
    finally:
        compiled.use_compiled(True)


# ---- drawn records --------------------------------------------------------------------------

_IDS = st.one_of(
    st.sampled_from(["u-1", "e.1:x", "A_b-9", "x" * 64, "x" * 65, "", "a b", "é"]),
    st.text(alphabet="abAB09._:-_ ~", min_size=0, max_size=70),
)
_MONEY = st.one_of(
    st.sampled_from(
        [
            "0",
            "0.00",
            "1.5",
            "1.50",
            "1.500",
            "1.501",
            "007.10",
            "10000000000",
            "10000000000.00",
            "10000000000.01",
            "99999999999999999999999",
            "-1",
            "1e2",
            " 1",
            "1.",
            ".5",
            "",
        ]
    ),
    st.decimals(min_value=0, max_value=10**11, places=2).map(str),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
)
#: Written into the JSON as a number (not a string) when drawn so.
_RAW_NUMBERS = st.sampled_from(
    ["0", "12", "12.5", "12.50", "12.500", "12.005", "0.1", "1E2", "-0", "-5", "00", "1.0e1"]
)


@st.composite
def _stamps(draw: st.DrawFn) -> str:
    days = draw(st.floats(min_value=-0.01, max_value=2000, allow_nan=False))
    moment = NOW - timedelta(days=days)
    offset = draw(st.sampled_from(["Z", "+00:00", "-00:00", "+08:00", "-05:30", "+23:59", "z"]))
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = draw(st.sampled_from(["", ".5", ".123456", ".1234567", ".000000", "."]))
    separator = draw(st.sampled_from(["T", "T", "T", "t", " "]))
    return text.replace("T", separator) + fraction + offset


@st.composite
def records(draw: st.DrawFn) -> tuple[RecordKind, bytes]:
    kind = draw(st.sampled_from(EVENT_KINDS))
    doc: dict[str, Any] = {
        RecordKind.REPAYMENT: repayment_doc,
        RecordKind.SPENDING: spending_doc,
        RecordKind.ASSET: asset_doc,
    }[kind]()
    doc["occurred_at"] = draw(st.one_of(_stamps(), st.just(ts(3))))
    raw: dict[str, str] = {}
    for field in list(doc):
        if draw(st.integers(0, 9)) > 1:
            continue  # most fields keep the builder's valid value
        if field in ("event_id", "user_id", "loan_id", "merchant_id", "category"):
            doc[field] = draw(st.one_of(_IDS, st.none()))
        elif field in ("amount", "amount_due", "amount_paid", "outstanding_balance", "value"):
            if draw(st.booleans()):
                raw[field] = draw(_RAW_NUMBERS)
            else:
                doc[field] = draw(_MONEY)
        elif field == "days_past_due":
            doc[field] = draw(st.one_of(st.integers(-2, 40000), st.booleans(), st.just("3")))
        elif field == "verified":
            doc[field] = draw(st.one_of(st.booleans(), st.none(), st.just(1)))
        elif field == "asset_type":
            doc[field] = draw(st.sampled_from(["deposit", "income", "Deposit", "gold"]))
        if draw(st.integers(0, 19)) == 0:
            del doc[field]
    if draw(st.integers(0, 4)) == 0:
        doc[draw(st.sampled_from(["note", "amount", "loan_id", "v2"]))] = draw(
            st.one_of(st.integers(-5, 10**30), st.text(max_size=5), st.none(), st.booleans())
        )
    for field in raw:
        doc[field] = f"@{field}@"
    separators = draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,\n", " :\t")]))
    text = json.dumps(doc, separators=separators)
    for field, number in raw.items():
        text = text.replace(f'"@{field}@"', number)
    return kind, text.encode()


@settings(max_examples=examples(2000), suppress_health_check=[HealthCheck.too_slow])
@given(record=records())
def test_a_drawn_record_is_decoded_as_python_decodes_it_or_left_to_python(
    record: tuple[RecordKind, bytes],
) -> None:
    kind, value = record
    key = b"u-1"
    with contextlib.suppress(AttributeError, ValueError):  # the record's own user, if any
        key = json.loads(value).get("user_id", "u-1").encode()
    assert_same_as_python(kind, value, key=key or b"u-1")


def test_the_drawn_records_take_both_ways() -> None:
    """The property above is not vacuous: both ways are taken, hundreds of times."""
    decoded = declined = 0

    @settings(max_examples=600, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(record=records())
    def count(record: tuple[RecordKind, bytes]) -> None:
        nonlocal decoded, declined
        kind, value = record
        if decode_plain(kind, b"u-1", value, now=NOW, limits=LIMITS) is not None:
            decoded += 1
        else:
            declined += 1

    count()
    assert decoded > 100
    assert declined > 100


# ---- the fold, both ways ---------------------------------------------------------------------


def _fold_everything(records: list[InboundRecord], *, plain: bool) -> tuple[Any, Any]:
    store, sink = FakeStore(), FakeSink()
    folder = EventFolder(
        SETTINGS, store, sink, Metrics(), lambda: TIMELINE, clock=lambda: FOLDED_AT
    )
    with pytest.MonkeyPatch.context() as patch:
        if not plain:
            patch.setattr(shell_module, "decode_plain", lambda *args, **kwargs: None)
        for i in range(0, len(records), 97):
            asyncio.run(folder.process(records[i : i + 97]))
    stored = {
        user: (u.version, u.ledger, u.checkpoint, u.latest_event_at, u.status_event)
        for user, u in store.users.items()
    }
    return stored, [(s.topic, s.key, s.value) for s in sink.sent]


def test_a_shuffled_workload_folds_to_the_same_bytes_decoded_either_way() -> None:
    records = [
        InboundRecord(topic=topic, partition=0, offset=i, key=key, value=value)
        for i, (topic, key, value) in enumerate(bench_records(3000, 300, 3, SETTINGS))
    ]
    spaced = records[5].value
    assert spaced is not None
    records[5] = records[5]._replace(value=spaced.replace(b", ", b",") + b" ")
    records.append(records[7])  # a redelivery
    records.append(records[8]._replace(value=b"{not json"))
    with_plain = _fold_everything(records, plain=True)
    assert with_plain == _fold_everything(records, plain=False)
    assert sum(len(u[1]) for u in with_plain[0].values()) == 3000

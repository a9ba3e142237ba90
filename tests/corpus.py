"""A corpus of distinct malformed records, each with the dead-letter code it must get.

Built relative to ``now`` so the same corpus serves the pure decoder tests (fixed clock) and
the worker tests (wall clock).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from streams.core.decoding import RecordKind, RejectCode
from tests.builders import asset_doc, repayment_doc, request_doc, spending_doc


@dataclass(frozen=True)
class BadRecord:
    """One malformed record and the code it must be dead-lettered with."""

    name: str
    kind: RecordKind
    key: bytes | None
    value: bytes | None
    code: RejectCode


def _json(doc: Any) -> bytes:
    return json.dumps(doc).encode()


R, S, A, Q = (RecordKind.REPAYMENT, RecordKind.SPENDING, RecordKind.ASSET, RecordKind.LOAN_REQUEST)
C = RejectCode


def bad_corpus(now: datetime) -> list[BadRecord]:
    """At least 40 distinct kinds of bad input, for user ``u-1`` unless the key is the fault."""

    def at(days: float) -> str:
        return (now - timedelta(days=days)).isoformat()

    def rep(**fields: Any) -> bytes:
        return _json(repayment_doc(occurred_at=at(1), **fields))

    def spend(**fields: Any) -> bytes:
        return _json(spending_doc(occurred_at=at(1), **fields))

    def ast(**fields: Any) -> bytes:
        return _json(asset_doc(occurred_at=at(1), **fields))

    def req(**fields: Any) -> bytes:
        return _json(request_doc(requested_at=at(0), **fields))

    missing = {k: v for k, v in repayment_doc(occurred_at=at(1)).items() if k != "loan_id"}
    u = b"u-1"
    return [
        BadRecord("not json", R, u, b"hello", C.NOT_JSON),
        BadRecord("truncated json", R, u, b'{"event_id":', C.NOT_JSON),
        BadRecord("empty value", R, u, b"", C.NOT_JSON),
        BadRecord("tombstone", S, u, None, C.NOT_JSON),
        BadRecord("invalid utf-8", S, u, b'{"a":"\xff\xfe"}', C.NOT_UTF8),
        BadRecord("utf-16", S, u, spend().decode().encode("utf-16"), C.NOT_UTF8),
        BadRecord("json array", S, u, b"[1,2]", C.NOT_OBJECT),
        BadRecord("json number", S, u, b"42", C.NOT_OBJECT),
        BadRecord("json string", S, u, b'"u-1"', C.NOT_OBJECT),
        BadRecord("json null", S, u, b"null", C.NOT_OBJECT),
        BadRecord("empty key", S, b"", spend(), C.EMPTY_KEY),
        BadRecord("no key", S, None, spend(), C.EMPTY_KEY),
        BadRecord("key is another user", S, b"u-2", spend(), C.KEY_MISMATCH),
        BadRecord("2 MiB value", S, u, b'{"pad":"' + b"x" * (2 * 1024 * 1024) + b'"}', C.OVERSIZED),
        BadRecord("NaN amount", S, u, spend().replace(b'"25.50"', b"NaN"), C.NON_FINITE_NUMBER),
        BadRecord(
            "Infinity amount", S, u, spend().replace(b'"25.50"', b"Infinity"), C.NON_FINITE_NUMBER
        ),
        BadRecord(
            "-Infinity value", A, u, ast().replace(b'"5000.00"', b"-Infinity"), C.NON_FINITE_NUMBER
        ),
        BadRecord(
            "1e309 amount", S, u, spend().replace(b'"25.50"', b"1e309"), C.AMOUNT_OUT_OF_RANGE
        ),
        BadRecord("negative amount paid", R, u, rep(amount_paid=-5), C.AMOUNT_OUT_OF_RANGE),
        BadRecord("over-limit asset", A, u, ast(value="10000000000.01"), C.AMOUNT_OUT_OF_RANGE),
        BadRecord("zero spending", S, u, spend(amount=0), C.AMOUNT_OUT_OF_RANGE),
        BadRecord("zero loan amount", Q, u, req(amount="0.00"), C.AMOUNT_OUT_OF_RANGE),
        BadRecord("three decimals", S, u, spend(amount="1.005"), C.TOO_MANY_DECIMALS),
        BadRecord("three decimals as number", R, u, rep(amount_due=0.125), C.TOO_MANY_DECIMALS),
        BadRecord("missing loan_id", R, u, _json(missing), C.MISSING_FIELD),
        BadRecord("missing everything", A, u, b"{}", C.MISSING_FIELD),
        BadRecord("null days_past_due", R, u, rep(days_past_due=None), C.NULL_FIELD),
        BadRecord("null amount", S, u, spend(amount=None), C.NULL_FIELD),
        BadRecord("string for int", R, u, rep(days_past_due="3"), C.WRONG_TYPE),
        BadRecord("float for int", R, u, rep(days_past_due=1.5), C.WRONG_TYPE),
        BadRecord("bool for money", R, u, rep(amount_due=True), C.WRONG_TYPE),
        BadRecord("string for bool", A, u, ast(verified="yes"), C.WRONG_TYPE),
        BadRecord("object for money", S, u, spend(amount={"value": 1}), C.WRONG_TYPE),
        BadRecord("number for id", S, u, spend(event_id=12345), C.WRONG_TYPE),
        BadRecord("negative days past due", R, u, rep(days_past_due=-1), C.OUT_OF_RANGE),
        BadRecord("term 37 months", Q, u, req(term_months=37), C.OUT_OF_RANGE),
        BadRecord("term 0 months", Q, u, req(term_months=0), C.OUT_OF_RANGE),
        BadRecord(
            "naive timestamp",
            S,
            u,
            _json(spending_doc(occurred_at="2026-11-01T10:00:00")),
            C.NAIVE_TIMESTAMP,
        ),
        BadRecord(
            "numeric timestamp", S, u, _json(spending_doc(occurred_at=1767225600)), C.WRONG_TYPE
        ),
        BadRecord(
            "garbage timestamp",
            S,
            u,
            _json(spending_doc(occurred_at="last tuesday")),
            C.INVALID_TIMESTAMP,
        ),
        BadRecord(
            "future timestamp", S, u, _json(spending_doc(occurred_at=at(-0.01))), C.FUTURE_TIMESTAMP
        ),
        BadRecord(
            "future request", Q, u, _json(request_doc(requested_at=at(-1))), C.FUTURE_TIMESTAMP
        ),
        BadRecord(
            "ancient timestamp",
            S,
            u,
            _json(spending_doc(occurred_at=at(365 * 6))),
            C.ANCIENT_TIMESTAMP,
        ),
        BadRecord("over-long event id", S, u, spend(event_id="e" * 65), C.INVALID_ID),
        BadRecord("over-long user id", S, b"u" * 65, spend(user_id="u" * 65), C.INVALID_ID),
        BadRecord("user id with space", S, b"u 1", spend(user_id="u 1"), C.INVALID_ID),
        BadRecord("empty request id", Q, u, req(request_id=""), C.INVALID_ID),
        BadRecord("unknown asset type", A, u, ast(asset_type="crypto"), C.INVALID_ENUM),
        BadRecord("unknown displayed status", Q, u, req(displayed_status="maybe"), C.INVALID_ENUM),
        BadRecord("bad category", S, u, spend(category="Food!"), C.INVALID_VALUE),
        BadRecord(
            "number beyond decimal's exponents",
            S,
            u,
            spend().replace(b'"25.50"', b"1e-1000000000000000000000000"),
            C.OUT_OF_RANGE,
        ),
        BadRecord(
            "integer of 5,000 digits",
            R,
            u,
            rep(days_past_due=0).replace(b'"days_past_due": 0', b'"days_past_due": ' + b"9" * 5000),
            C.OUT_OF_RANGE,
        ),
        # The contract as written, not what a lenient parser would take.
        BadRecord(
            "unix seconds as a string",
            S,
            u,
            _json(spending_doc(occurred_at=str(int(now.timestamp()) - 86400))),
            C.INVALID_TIMESTAMP,
        ),
        BadRecord(
            "space for the T",
            S,
            u,
            _json(spending_doc(occurred_at=at(1).replace("T", " "))),
            C.INVALID_TIMESTAMP,
        ),
        BadRecord(
            "offset without a colon",
            Q,
            u,
            _json(request_doc(requested_at=at(0)[:-6] + "+0000")),
            C.INVALID_TIMESTAMP,
        ),
        BadRecord(
            "year 1 at +14:00",
            R,
            u,
            _json(repayment_doc(occurred_at="0001-01-01T00:00:00+14:00")),
            C.ANCIENT_TIMESTAMP,
        ),
        BadRecord(
            "year 9999 at -14:00",
            Q,
            u,
            _json(request_doc(requested_at="9999-12-31T23:59:59-14:00")),
            C.FUTURE_TIMESTAMP,
        ),
        BadRecord("amount with spaces", S, u, spend(amount=" 7.50 "), C.WRONG_TYPE),
        BadRecord("amount with a newline", R, u, rep(amount_paid="100.00\n"), C.WRONG_TYPE),
        BadRecord(
            "repeated amount key",
            S,
            u,
            spend().replace(b'"amount": "25.50"', b'"amount": "25.50", "amount": "2550.00"'),
            C.DUPLICATE_KEY,
        ),
        BadRecord(
            "repeated key in an unknown field",
            A,
            u,
            _json({**asset_doc(occurred_at=at(1)), "extra": {}}).replace(
                b'"extra": {}', b'"extra": {"a": 1, "a": 1}'
            ),
            C.DUPLICATE_KEY,
        ),
    ]

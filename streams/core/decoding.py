"""Bytes off the wire → validated contract models, or a :class:`RejectedRecord` with a code.

Pure: the caller passes ``now`` and the limits. Every failure raises :class:`RejectedRecord`
(never anything else) so that the shell can dead-letter it with a specific reason.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, NoReturn

from pydantic import BaseModel, ValidationError

from schemas.models import AssetEvent, LoanRequest, RepaymentEvent, SpendingEvent


class RecordKind(StrEnum):
    """What an input topic carries."""

    REPAYMENT = "repayment"
    SPENDING = "spending"
    ASSET = "asset"
    LOAN_REQUEST = "loan_request"


MODEL_OF_KIND: dict[RecordKind, type[BaseModel]] = {
    RecordKind.REPAYMENT: RepaymentEvent,
    RecordKind.SPENDING: SpendingEvent,
    RecordKind.ASSET: AssetEvent,
    RecordKind.LOAN_REQUEST: LoanRequest,
}

Decoded = RepaymentEvent | SpendingEvent | AssetEvent | LoanRequest


class RejectCode(StrEnum):
    """Why a record was dead-lettered. Stable identifiers: dashboards and alerts use them."""

    OVERSIZED = "OVERSIZED"
    EMPTY_KEY = "EMPTY_KEY"
    NOT_UTF8 = "NOT_UTF8"
    NOT_JSON = "NOT_JSON"
    NOT_OBJECT = "NOT_OBJECT"
    NON_FINITE_NUMBER = "NON_FINITE_NUMBER"
    MISSING_FIELD = "MISSING_FIELD"
    NULL_FIELD = "NULL_FIELD"
    WRONG_TYPE = "WRONG_TYPE"
    INVALID_ID = "INVALID_ID"
    INVALID_ENUM = "INVALID_ENUM"
    INVALID_VALUE = "INVALID_VALUE"
    OUT_OF_RANGE = "OUT_OF_RANGE"
    AMOUNT_OUT_OF_RANGE = "AMOUNT_OUT_OF_RANGE"
    TOO_MANY_DECIMALS = "TOO_MANY_DECIMALS"
    INVALID_TIMESTAMP = "INVALID_TIMESTAMP"
    NAIVE_TIMESTAMP = "NAIVE_TIMESTAMP"
    FUTURE_TIMESTAMP = "FUTURE_TIMESTAMP"
    ANCIENT_TIMESTAMP = "ANCIENT_TIMESTAMP"
    KEY_MISMATCH = "KEY_MISMATCH"
    INVALID_HEADER = "INVALID_HEADER"
    DUPLICATE_KEY = "DUPLICATE_KEY"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a record: the field (dotted path; empty for the record as a
    whole), its code and a message naming it, never its value."""

    field: str
    code: RejectCode
    message: str


class RejectedRecord(Exception):
    """A record that cannot be accepted; ``code`` is machine-readable, ``message`` is for people.

    Messages name the offending field but never echo its value (it may be personal data).
    ``problems`` lists each fault found, one by one (the first has ``code``).
    """

    def __init__(
        self, code: RejectCode, message: str, problems: Sequence[Problem] | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.problems: tuple[Problem, ...] = (
            tuple(problems) if problems is not None else (Problem("", code, message),)
        )


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    """Bounds applied while decoding, from settings."""

    max_record_bytes: int = 64 * 1024
    future_tolerance: timedelta = timedelta(minutes=5)
    horizon: timedelta = timedelta(days=1826)


_ID_FIELDS = frozenset({"event_id", "user_id", "loan_id", "request_id", "merchant_id"})
_TIMESTAMP_FIELDS = ("occurred_at", "requested_at")
#: The timestamp fields each model has (asking a model for a field it lacks is slow).
_TIMESTAMP_FIELDS_OF: dict[type[BaseModel], tuple[str, ...]] = {
    model: tuple(f for f in _TIMESTAMP_FIELDS if f in model.model_fields)
    for model in MODEL_OF_KIND.values()
}

_CODE_OF_ERROR_TYPE: dict[str, RejectCode] = {
    "missing": RejectCode.MISSING_FIELD,
    "money_not_finite": RejectCode.NON_FINITE_NUMBER,
    "money_out_of_range": RejectCode.AMOUNT_OUT_OF_RANGE,
    "money_too_many_decimals": RejectCode.TOO_MANY_DECIMALS,
    "money_type": RejectCode.WRONG_TYPE,
    "timestamp_type": RejectCode.WRONG_TYPE,
    "timestamp_format": RejectCode.INVALID_TIMESTAMP,
    "timestamp_before_utc_min": RejectCode.ANCIENT_TIMESTAMP,
    "timestamp_after_utc_max": RejectCode.FUTURE_TIMESTAMP,
    "timezone_aware": RejectCode.NAIVE_TIMESTAMP,
    "datetime_parsing": RejectCode.INVALID_TIMESTAMP,
    "datetime_from_date_parsing": RejectCode.INVALID_TIMESTAMP,
    "datetime_object_invalid": RejectCode.INVALID_TIMESTAMP,
    "enum": RejectCode.INVALID_ENUM,
    "literal_error": RejectCode.INVALID_ENUM,
    "greater_than": RejectCode.OUT_OF_RANGE,
    "greater_than_equal": RejectCode.OUT_OF_RANGE,
    "less_than": RejectCode.OUT_OF_RANGE,
    "less_than_equal": RejectCode.OUT_OF_RANGE,
}
_FORMAT_ERRORS = frozenset({"string_pattern_mismatch", "string_too_long", "string_too_short"})


def _reject_constant(name: str) -> NoReturn:
    raise RejectedRecord(RejectCode.NON_FINITE_NUMBER, f"JSON constant {name} is not allowed")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # The json module keeps the last of repeated keys, other parsers the first: a record
    # that means different things to different readers is refused.
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise RejectedRecord(RejectCode.DUPLICATE_KEY, "a JSON object has the same key twice")
    return obj


#: json.loads(text, parse_float=Decimal, parse_constant=_reject_constant,
#: object_pairs_hook=_unique_keys) without building a decoder per record.
_DECODER = json.JSONDecoder(
    parse_float=Decimal, parse_constant=_reject_constant, object_pairs_hook=_unique_keys
)


def _code_for(error: Any) -> RejectCode:
    error_type: str = error["type"]
    field = str(error["loc"][0]) if error["loc"] else ""
    if error_type != "missing" and error.get("input", 0) is None:
        return RejectCode.NULL_FIELD
    if error_type in _FORMAT_ERRORS:
        return RejectCode.INVALID_ID if field in _ID_FIELDS else RejectCode.INVALID_VALUE
    if error_type in _CODE_OF_ERROR_TYPE:
        return _CODE_OF_ERROR_TYPE[error_type]
    if error_type.endswith("_type") or error_type.endswith("_parsing"):
        return RejectCode.WRONG_TYPE
    return RejectCode.INVALID_VALUE


def _field(error: Any) -> str:
    return ".".join(str(part) for part in error["loc"])


def _describe(error: Any) -> str:
    return f"field '{_field(error) or 'record'}': {error['msg']}"


#: At most this many problems are listed for one record (a record may have many fields).
MAX_PROBLEMS = 20


def check_header_names(headers: Sequence[tuple[str, object]]) -> None:
    """Refuse a record with a header name that is not UTF-8.

    Kafka defines header names as UTF-8 strings but brokers do not check them; the consumer
    reads such a name with its invalid bytes as lone surrogates
    (:mod:`streams.adapters.kafka.records`), which no UTF-8 encoder accepts.
    """
    for name, _ in headers:
        if name.isascii():
            continue
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            raise RejectedRecord(
                RejectCode.INVALID_HEADER, "a header name is not valid UTF-8"
            ) from None


def parse_json_object(value: bytes) -> dict[str, Any]:
    """Parse a UTF-8 JSON object; floats become exact Decimals, NaN/Infinity and repeated
    keys are refused."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RejectedRecord(
            RejectCode.NOT_UTF8, f"value is not valid UTF-8 (byte {exc.start})"
        ) from None
    try:
        parsed = _DECODER.decode(text)
    except RejectedRecord:
        raise
    except (json.JSONDecodeError, RecursionError) as exc:
        raise RejectedRecord(
            RejectCode.NOT_JSON, f"value is not JSON ({type(exc).__name__})"
        ) from None
    except (ValueError, ArithmeticError):
        # Valid JSON, but an integer of more than 4,300 digits (Python's limit) or an exponent
        # beyond the decimal module's (1e-1000000000000000000 raises InvalidOperation).
        raise RejectedRecord(
            RejectCode.OUT_OF_RANGE, "a JSON number is too large or too small to represent"
        ) from None
    if not isinstance(parsed, dict):
        raise RejectedRecord(
            RejectCode.NOT_OBJECT, f"value is a JSON {type(parsed).__name__}, not an object"
        )
    return parsed


def decode_value(
    kind: RecordKind,
    value: bytes | None,
    *,
    now: datetime,
    limits: DecodeLimits,
) -> Decoded:
    """Validate a record's value as ``kind`` (size, JSON, the model, the time window) and
    return its model, or raise RejectedRecord. The key is :func:`decode_record`'s concern;
    the HTTP decision API, which has no key, validates a body with this alone."""
    if value is None:
        raise RejectedRecord(RejectCode.NOT_JSON, "value is empty (tombstone)")
    if len(value) > limits.max_record_bytes:
        raise RejectedRecord(
            RejectCode.OVERSIZED,
            f"value has {len(value)} bytes, more than the limit of {limits.max_record_bytes}",
        )
    obj = parse_json_object(value)
    model = MODEL_OF_KIND[kind]
    try:
        record = model.model_validate(obj)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = errors[0]
        message = "; ".join(_describe(e) for e in errors[:3])
        problems = [Problem(_field(e), _code_for(e), str(e["msg"])) for e in errors[:MAX_PROBLEMS]]
        raise RejectedRecord(_code_for(first), message, problems) from None
    for field in _TIMESTAMP_FIELDS_OF[model]:
        stamp = getattr(record, field)
        if stamp is None:
            continue
        if stamp > now + limits.future_tolerance:
            _reject_field(
                RejectCode.FUTURE_TIMESTAMP,
                field,
                f"is more than {limits.future_tolerance} in the future",
            )
        if stamp < now - limits.horizon:
            _reject_field(
                RejectCode.ANCIENT_TIMESTAMP,
                field,
                f"is older than the horizon of {limits.horizon.days} days",
            )
    return record  # type: ignore[return-value]


def _reject_field(code: RejectCode, field: str, text: str) -> NoReturn:
    raise RejectedRecord(code, f"field '{field}' {text}", [Problem(field, code, text)])


def decode_record(
    kind: RecordKind,
    key: bytes | None,
    value: bytes | None,
    *,
    now: datetime,
    limits: DecodeLimits,
    headers: Sequence[tuple[str, object]] = (),
) -> Decoded:
    """Validate one Kafka record of ``kind`` and return its model, or raise RejectedRecord.

    Header values are opaque to creditline; header names must be UTF-8.
    """
    if value is None:
        raise RejectedRecord(RejectCode.NOT_JSON, "value is empty (tombstone)")
    if len(value) > limits.max_record_bytes:
        raise RejectedRecord(
            RejectCode.OVERSIZED,
            f"value has {len(value)} bytes, more than the limit of {limits.max_record_bytes}",
        )
    if not key:
        raise RejectedRecord(RejectCode.EMPTY_KEY, "record has no key; it must be the user_id")
    check_header_names(headers)
    record = decode_value(kind, value, now=now, limits=limits)
    if key != str(getattr(record, "user_id", "")).encode("utf-8"):
        raise RejectedRecord(RejectCode.KEY_MISMATCH, "record key differs from user_id")
    return record

"""Pydantic v2 models of every record on creditline's topics.

Money is :class:`~decimal.Decimal` end to end: accepted as a JSON number or a decimal string
with at most two decimal places in ``[0, 10_000_000_000]``, emitted as a string with exactly
two places. Timestamps must be RFC 3339 strings with an offset and are normalised to UTC.
Unknown fields are ignored so that producers can add fields without breaking us.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    StrictInt,
    StringConstraints,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

#: The version of the wire contract (docs/contract.md): in the AsyncAPI document's
#: ``info.version`` and every JSON Schema's ``$comment``. Minor: additive; major: breaking.
CONTRACT_VERSION = "1.1.0"

MONEY_MAX = Decimal("10000000000")
CENT = Decimal("0.01")
_DECIMAL_STRING = re.compile(r"[0-9]+(\.[0-9]+)?")


def whole_string_pattern(body: str) -> str:
    """A JSON Schema ``pattern`` matching only whole strings, in every regex dialect.

    JSON Schema patterns are ECMA-262, where ``$`` is the end of the string; Python's ``re``
    (which python-jsonschema uses) also lets ``$`` match before a final newline, so
    ``"u-1\n"`` would pass ``^[a-z0-9-]+$`` there. ``(?!\n)`` after the ``$`` refuses that
    newline in both dialects and changes nothing for ECMA-262.
    """
    return f"^{body}$(?!\\n)"


#: RFC 3339 ``date-time`` (section 5.6): "T" and "Z" in either case (as its note allows), any
#: fraction of a second. The offset is optional here only so that a missing one is reported
#: as a naive timestamp; pydantic checks the values (month 13, hour 24, leap seconds).
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})?"
)

#: The same shape for the JSON Schemas, offset required and each field in its range; the day
#: of the month (February 30) is left to ``format: date-time``.
TIMESTAMP_PATTERN = whole_string_pattern(
    r"(?!0000)[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]([01][0-9]|2[0-3])"
    r":[0-5][0-9]:[0-5][0-9](\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
)

#: Error types raised by our own validators; the decoder maps them to dead-letter codes.
ERR_MONEY_NOT_FINITE = "money_not_finite"
ERR_MONEY_RANGE = "money_out_of_range"
ERR_MONEY_DECIMALS = "money_too_many_decimals"
ERR_MONEY_TYPE = "money_type"
ERR_TIMESTAMP_TYPE = "timestamp_type"
ERR_TIMESTAMP_FORMAT = "timestamp_format"
ERR_TIMESTAMP_BEFORE_UTC_MIN = "timestamp_before_utc_min"
ERR_TIMESTAMP_AFTER_UTC_MAX = "timestamp_after_utc_max"


def _parse_money(value: Any) -> Decimal:
    """Turn a JSON number (int or Decimal) or decimal string into an exact Decimal amount."""
    if isinstance(value, bool):
        raise PydanticCustomError(ERR_MONEY_TYPE, "amount must be a number or decimal string")
    if isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, Decimal):
        amount = value
    elif isinstance(value, float):
        # Only reachable from Python callers: JSON is parsed with Decimal for floats.
        if value != value or value in (float("inf"), float("-inf")):
            raise PydanticCustomError(ERR_MONEY_NOT_FINITE, "amount must be finite")
        amount = Decimal(repr(value))
    elif isinstance(value, str):
        # The whole string: no spaces, signs, exponents or a trailing newline.
        if not _DECIMAL_STRING.fullmatch(value):
            raise PydanticCustomError(
                ERR_MONEY_TYPE, "amount string must be a plain decimal like '1234.50'"
            )
        try:
            amount = Decimal(value)
        except InvalidOperation as exc:  # pragma: no cover - regex already guards
            raise PydanticCustomError(ERR_MONEY_TYPE, "amount is not a decimal") from exc
    else:
        raise PydanticCustomError(ERR_MONEY_TYPE, "amount must be a number or decimal string")
    if not amount.is_finite():
        raise PydanticCustomError(ERR_MONEY_NOT_FINITE, "amount must be finite")
    if amount < 0 or amount > MONEY_MAX:
        raise PydanticCustomError(ERR_MONEY_RANGE, "amount must be between 0 and 10,000,000,000")
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2 and amount != amount.quantize(CENT):
        raise PydanticCustomError(ERR_MONEY_DECIMALS, "amount has more than 2 decimal places")
    # copy_abs: -0.0 is zero, never written as "-0.00".
    return amount.quantize(CENT).copy_abs()


def format_money(amount: Decimal) -> str:
    """The wire form of an amount: a decimal string with exactly two places."""
    return f"{amount.quantize(CENT):f}"


def _positive(amount: Decimal) -> Decimal:
    if amount <= 0:
        raise PydanticCustomError(ERR_MONEY_RANGE, "amount must be greater than 0")
    return amount


#: An amount as creditline reads a decimal string: digits, at most 2 places that count (more
#: trailing zeros are fine: "7.500"), at most 10,000,000,000; leading zeros are harmless.
_MONEY_TEXT = r"0*([0-9]{1,10}(\.[0-9]{1,2}0*)?|10000000000(\.0+)?)"
MONEY_IN_STRING_PATTERN = whole_string_pattern(_MONEY_TEXT)
#: The same, not zero ("0", "0.00" and "000.0" are all made of zeros and dots).
POSITIVE_MONEY_IN_STRING_PATTERN = "^(?![0.]*$)" + MONEY_IN_STRING_PATTERN[1:]
#: An amount as creditline writes one: exactly 2 places, no leading zeros.
MONEY_OUT_PATTERN = whole_string_pattern(r"(([0-9]|[1-9][0-9]{1,9})\.[0-9]{2}|10000000000\.00)")
_MONEY_RULE = (
    "0 to 10,000,000,000 with at most 2 decimal places. A decimal string is checked here in "
    "full (trailing zeros allowed: '7.500'; no sign, exponent or spaces). A JSON number's "
    "places are checked only by creditline, on the number's exact decimal text: a validator "
    "reads numbers as binary floats, where 19.99 is not a multiple of 0.01, so this schema "
    "has no multipleOf and 0.125 passes it (creditline dead-letters it TOO_MANY_DECIMALS)."
)
_MONEY_IN_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "number", "minimum": 0, "maximum": 10_000_000_000},
        {"type": "string", "pattern": MONEY_IN_STRING_PATTERN},
    ],
    "description": f"Amount: a JSON number or a decimal string, {_MONEY_RULE}",
}
_POSITIVE_MONEY_IN_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "number", "exclusiveMinimum": 0, "maximum": 10_000_000_000},
        {"type": "string", "pattern": POSITIVE_MONEY_IN_STRING_PATTERN},
    ],
    "description": f"Amount greater than 0: a JSON number or a decimal string, {_MONEY_RULE}",
}
_MONEY_OUT_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": MONEY_OUT_PATTERN,
    "description": "Amount: a decimal string with exactly 2 places ('3000.00'), never a JSON "
    "number; read it as a decimal, not a float.",
}

Money = Annotated[
    Decimal,
    BeforeValidator(_parse_money),
    PlainSerializer(format_money, return_type=str, when_used="json"),
    WithJsonSchema(_MONEY_IN_SCHEMA, mode="validation"),
    WithJsonSchema(_MONEY_OUT_SCHEMA, mode="serialization"),
]
PositiveMoney = Annotated[
    Decimal,
    BeforeValidator(_parse_money),
    AfterValidator(_positive),
    PlainSerializer(format_money, return_type=str, when_used="json"),
    WithJsonSchema(_POSITIVE_MONEY_IN_SCHEMA, mode="validation"),
    WithJsonSchema(_MONEY_OUT_SCHEMA, mode="serialization"),
]


def _require_rfc3339_string(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise PydanticCustomError(ERR_TIMESTAMP_TYPE, "timestamp must be an RFC 3339 string")
    # pydantic alone would also take Unix seconds ("1700000000"), a space for the "T",
    # minutes without seconds and offsets without a colon: not the contract.
    if not _RFC3339.fullmatch(value):
        raise PydanticCustomError(
            ERR_TIMESTAMP_FORMAT, "timestamp must be RFC 3339, like 2026-11-01T09:30:00+08:00"
        )
    return value


def _to_utc(value: datetime) -> datetime:
    # One zone everywhere: equality and ordering never depend on the producer's offset.
    try:
        return value.astimezone(UTC)
    except OverflowError:
        # 0001-01-01T00:00:00+14:00 is before datetime.min in UTC, 9999-12-31T23:59:59-14:00
        # after datetime.max: not an error of ours but far beyond any horizon.
        if value.year == 1:
            raise PydanticCustomError(
                ERR_TIMESTAMP_BEFORE_UTC_MIN, "timestamp is before year 1 in UTC"
            ) from None
        raise PydanticCustomError(
            ERR_TIMESTAMP_AFTER_UTC_MAX, "timestamp is after year 9999 in UTC"
        ) from None


_TIMESTAMP_IN_SCHEMA: dict[str, Any] = {
    "type": "string",
    "format": "date-time",
    "pattern": TIMESTAMP_PATTERN,
}

Timestamp = Annotated[
    AwareDatetime,
    BeforeValidator(_require_rfc3339_string),
    AfterValidator(_to_utc),
    Field(
        description="RFC 3339 date-time with an offset ('2026-11-01T09:30:00+08:00', '...Z'; "
        "'t' and 'z' in either case, any fraction of a second); normalised to UTC. Not Unix "
        "seconds, a space for the 'T', minutes without seconds or '+0800'. creditline also "
        "refuses one more than 5 minutes in the future or older than its horizon (5 years)."
    ),
    WithJsonSchema(_TIMESTAMP_IN_SCHEMA),
]
#: A timestamp creditline writes: RFC 3339 in UTC ("2026-11-28T08:00:00.021000Z").
UtcTimestamp = Annotated[
    AwareDatetime,
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": TIMESTAMP_PATTERN}),
]


def _id_schema(characters: str, max_length: int) -> WithJsonSchema:
    return WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": max_length,
            "pattern": whole_string_pattern(f"[{characters}]+"),
        }
    )


EventId = Annotated[
    str,
    StringConstraints(strict=True, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$"),
    _id_schema("A-Za-z0-9._:-", 64),
]
UserId = Annotated[
    str,
    StringConstraints(strict=True, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$"),
    _id_schema("A-Za-z0-9_-", 64),
]
LoanId = EventId
Category = Annotated[
    str,
    StringConstraints(strict=True, min_length=1, max_length=32, pattern=r"^[a-z_]+$"),
    _id_schema("a-z_", 32),
]


class AssetType(StrEnum):
    """What an asset snapshot is about; ``income`` is monthly income."""

    DEPOSIT = "deposit"
    INVESTMENT = "investment"
    PROPERTY = "property"
    INCOME = "income"


class DisplayedStatus(StrEnum):
    """What the app showed the user when they asked for a loan."""

    OPEN = "open"
    CLOSED = "closed"
    FROZEN = "frozen"
    UNKNOWN = "unknown"


class EffectiveStatus(StrEnum):
    """The live status of a credit line, derived from the latest score."""

    OPEN = "open"
    CLOSED = "closed"
    FROZEN = "frozen"


class Outcome(StrEnum):
    """The answer to a loan request."""

    APPROVED = "approved"
    PARTIALLY_APPROVED = "partially_approved"
    DECLINED = "declined"
    REVIEW = "review"


class _Inbound(BaseModel):
    # Unknown fields are ignored for forward compatibility.
    model_config = ConfigDict(extra="ignore", frozen=True)


class _EventBase(_Inbound):
    event_id: EventId = Field(description="Unique per event; redeliveries carry the same id.")
    user_id: UserId
    occurred_at: Timestamp


class RepaymentEvent(_EventBase):
    """A repayment (or missed repayment) on one loan; its balance is a snapshot."""

    loan_id: LoanId
    amount_due: Money
    amount_paid: Money
    days_past_due: StrictInt = Field(ge=0, le=36500, description="0 = on time.")
    outstanding_balance: Money = Field(
        description="Principal still owed on this loan after this event."
    )


class SpendingEvent(_EventBase):
    """A purchase on the user's account."""

    amount: PositiveMoney
    category: Category
    merchant_id: EventId | None = None


class AssetEvent(_EventBase):
    """A snapshot of one asset type; the latest by ``occurred_at`` wins."""

    asset_type: AssetType
    value: Money
    verified: StrictBool = False


InputEvent = RepaymentEvent | SpendingEvent | AssetEvent


class LoanRequest(_Inbound):
    """A user asks for a loan; ``displayed_status`` is what the app showed them."""

    request_id: EventId
    user_id: UserId
    requested_at: Timestamp
    amount: PositiveMoney
    term_months: StrictInt = Field(ge=1, le=36)
    displayed_status: DisplayedStatus


#: The reason codes of creditline's own rules (streams.core.reasons.ReasonCode; a test keeps
#: the two lists equal). The others are the policy's: ADVERSE_<ATTRIBUTE>, SEGMENT_<NAME> and
#: each exception's own code.
FIXED_REASON_CODES = (
    "NO_HISTORY",
    "SCORE_UNAVAILABLE",
    "STALE_SCORE",
    "FROZEN_PAST_DUE",
    "SCORE_BELOW_THRESHOLD",
    "STATUS_DWELL",
    "LIMIT_EXCEEDED",
    "INSUFFICIENT_AVAILABLE_LIMIT",
    "LIVE_STATUS_OPEN",
    "PROMOTION_APPLIED",
    "SCORE_QUALIFIES",
    "LATE_EVENT_RESTATED",
    "REQUEST_TIME_UNTRUSTED",
    "POLICY_UNAVAILABLE",
    "EVENT_LIMIT_REACHED",
    "LOAN_LIMIT_REACHED",
)
#: Policy names are ``[a-z][a-z0-9_]{0,47}``; their codes are upper case.
_POLICY_NAME_CODE = "[A-Z][A-Z0-9_]{0,47}"
_REASON_CODE_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": whole_string_pattern("[A-Z][A-Z0-9_]*"),
    "anyOf": [
        {"enum": list(FIXED_REASON_CODES), "description": "creditline's own rules."},
        {
            "pattern": whole_string_pattern(f"ADVERSE_{_POLICY_NAME_CODE}"),
            "description": "A scorecard attribute that cost points (the policy names them).",
        },
        {
            "pattern": whole_string_pattern(f"SEGMENT_{_POLICY_NAME_CODE}"),
            "description": "The policy segment whose thresholds applied.",
        },
        {
            "pattern": whole_string_pattern("[A-Z][A-Z0-9_]{0,63}"),
            "description": "A policy exception's own code (docs/policy.md).",
        },
    ],
    "description": "Stable, machine-readable: match on it, never on the texts. New codes may "
    "be added in a minor contract version (docs/contract.md): treat an unknown one like a "
    "code you do not act on.",
}
ReasonCodeText = Annotated[
    str, Field(pattern=r"^[A-Z][A-Z0-9_]*$"), WithJsonSchema(_REASON_CODE_SCHEMA)
]


class Reason(BaseModel):
    """Why a decision came out as it did: a stable code and readable texts."""

    model_config = ConfigDict(frozen=True)

    code: ReasonCodeText
    text: str = Field(description="The text in the configured language (English by default).")
    texts: dict[str, str] = Field(
        default_factory=dict,
        description="The text in every language: 'en' (English) and 'zh' (Simplified Chinese).",
    )


class PathBackOption(BaseModel):
    """One way back: what to do, and the score it reaches."""

    model_config = ConfigDict(frozen=True)

    text: str = Field(description="What to do, in the configured language.")
    texts: dict[str, str] = Field(
        default_factory=dict,
        description="The text in every language: 'en' (English) and 'zh' (Simplified Chinese).",
    )
    months: int = Field(
        ge=0,
        description="Months of on-time repayment and account use this way needs (0: actions "
        "possible now).",
    )
    score: int = Field(
        ge=350,
        le=950,
        description="The score this way reaches, counting only its own changes (a lower bound).",
    )


class PathBack(BaseModel):
    """The smallest behaviour changes that would bring a closed or frozen line's score back
    to the reopening threshold, under the scorecard and policy that decided."""

    model_config = ConfigDict(frozen=True)

    target_score: int = Field(ge=350, le=950, description="The reopening threshold that applied.")
    options: list[PathBackOption] = Field(
        description="Up to three ways, fewest changes and months first; empty when the score "
        "already qualifies (the line is held by a freeze or the dwell time)."
    )
    good_behaviour_months: int | None = Field(
        default=None,
        description="Months of on-time repayment and account use after which the score alone "
        "reaches the target; null when not within 24 months.",
    )


class LoanDecision(BaseModel):
    """The answer to one :class:`LoanRequest`, decided from the live score."""

    model_config = ConfigDict(frozen=True)

    request_id: EventId
    user_id: UserId
    decided_at: UtcTimestamp
    outcome: Outcome
    requested_amount: Money
    approved_amount: Money
    credit_limit: Money
    available_limit: Money
    score: int = Field(ge=350, le=950)
    score_as_of: UtcTimestamp | None = Field(
        description="Time of the latest event folded into the score; null when no state "
        "could be read (NO_HISTORY, SCORE_UNAVAILABLE)."
    )
    effective_status: EffectiveStatus
    displayed_status: DisplayedStatus
    overrides_displayed_status: bool = Field(
        description="True when the outcome follows an effective status that differs from a "
        "concrete displayed status (open/closed/frozen)."
    )
    reasons: list[Reason] = Field(description="Never empty unless fully approved.")
    policy_version: str
    scorer_version: str
    evaluated_at: UtcTimestamp | None = Field(
        default=None,
        description="The instant the request was judged at: its requested_at, or its arrival "
        "if that was earlier. The answer is a function of the user's events up to this "
        "instant and the policy in force then. Null when the request was not judged "
        "(REQUEST_TIME_UNTRUSTED, SCORE_UNAVAILABLE, POLICY_UNAVAILABLE).",
    )
    status_since: UtcTimestamp | None = Field(
        default=None,
        description="Since when (event time) the effective status has held; null when no "
        "state could be read.",
    )
    segment: str | None = Field(
        default=None,
        description="The policy segment whose thresholds applied ('standard' when none "
        "matched); null when no state could be read.",
    )
    scorecard_version: str | None = Field(
        default=None,
        description="The scorecard that scored (docs/scorecard.md); null when no state could "
        "be read.",
    )
    pd: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Probability of default of the score over pd_horizon_months, from the "
        "scorecard's scaling; null when no state could be read.",
    )
    pd_horizon_months: int | None = Field(
        default=None, ge=1, description="The horizon of pd, in months (12 unless the card says)."
    )
    path_back: PathBack | None = Field(
        default=None,
        description="For a decline on a closed or frozen line: the smallest behaviour changes "
        "that would reopen it; null otherwise.",
    )


class LineStatusChanged(BaseModel):
    """The effective status of a user's line changed (published on ``credit.line-status``)."""

    model_config = ConfigDict(frozen=True)

    user_id: UserId
    changed_at: UtcTimestamp = Field(description="Event time at which the status changed.")
    previous_status: EffectiveStatus | None = Field(description="Null for a user's first status.")
    status: EffectiveStatus
    credit_limit: Money
    score: int = Field(ge=350, le=950)
    reasons: list[Reason]
    policy_version: str
    scorecard_version: str | None = Field(
        default=None, description="The scorecard that scored (docs/scorecard.md)."
    )


#: Models creditline writes; their schemas describe what it emits (money as strings), the
#: others' what it accepts (money as numbers or strings).
OUTPUT_MODELS = frozenset({"LoanDecision", "LineStatusChanged"})


def schema_mode(name: str) -> Literal["validation", "serialization"]:
    """Which side of a contract model its published schema describes."""
    return "serialization" if name in OUTPUT_MODELS else "validation"


#: Every model published as a JSON Schema file, by file stem.
CONTRACT_MODELS: dict[str, type[BaseModel]] = {
    "RepaymentEvent": RepaymentEvent,
    "SpendingEvent": SpendingEvent,
    "AssetEvent": AssetEvent,
    "LoanRequest": LoanRequest,
    "LoanDecision": LoanDecision,
    "LineStatusChanged": LineStatusChanged,
}

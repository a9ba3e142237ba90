"""The published JSON Schemas agree with creditline, for python-jsonschema and for Ajv.

Both ways: every record creditline accepts validates, and every record it rejects is
rejected by both validators unless the rejection is one no schema can express
(:class:`tests.contract.ServiceOnly`, listed in docs/contract.md). Outputs: every decision
and line-status event the core produces validates, and broken ones do not.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from schemas.models import (
    CONTRACT_MODELS,
    CONTRACT_VERSION,
    FIXED_REASON_CODES,
    LineStatusChanged,
    LoanDecision,
    LoanRequest,
)
from streams.core.answer import answer
from streams.core.decision import (
    decide_at_capacity,
    decide_policy_unavailable,
    decide_score_unavailable,
    decide_untrusted_time,
    status_reasons,
)
from streams.core.decoding import (
    DecodeLimits,
    RecordKind,
    RejectCode,
    RejectedRecord,
    decode_record,
)
from streams.core.policy import load_default_policy
from streams.core.reasons import ReasonCode, reason
from streams.core.timeline import advance, canonical, constant, standing
from streams.devtools.simulation import loan_requests, population_events, to_record
from streams.settings import Settings
from streams.topics import Topics
from tests.builders import NOW, asset_doc, encode, repayment_doc, request_doc, spending_doc
from tests.contract import (
    SCHEMA_OF_KIND,
    ServiceOnly,
    ajv_validate,
    jsonschema_valid,
    python_validator,
    schema,
    service_only,
)
from tests.corpus import bad_corpus
from tests.histories import crossing_population, request_for
from tests.properties import examples

ROOT = Path(__file__).resolve().parents[2]
LIMITS = DecodeLimits(max_record_bytes=64 * 1024)
HORIZON = timedelta(days=1826)


@dataclass(frozen=True)
class Record:
    """One input record: the topic's kind, the key and value bytes."""

    label: str
    kind: RecordKind
    key: bytes | None
    value: bytes | None

    @property
    def schema(self) -> str:
        return SCHEMA_OF_KIND[self.kind]

    def verdict(self) -> RejectCode | None:
        """creditline's verdict: None when accepted, else the dead-letter code."""
        try:
            decode_record(self.kind, self.key, self.value, now=NOW, limits=LIMITS)
        except RejectedRecord as rejected:
            return rejected.code
        return None


def _raw(kind: RecordKind, text: str, key: bytes = b"u-1", label: str = "") -> Record:
    return Record(label or text, kind, key, text.encode())


def _with(doc: dict[str, Any], **raw: str) -> str:
    """``doc`` as JSON with some fields replaced by raw JSON text (numbers as written)."""
    marked = {**doc, **{name: f"@@{name}@@" for name in raw}}
    text = json.dumps(marked)
    for name, value in raw.items():
        text = text.replace(f'"@@{name}@@"', value)
    return text


R, S, A, Q = RecordKind.REPAYMENT, RecordKind.SPENDING, RecordKind.ASSET, RecordKind.LOAN_REQUEST
DAY = NOW - timedelta(days=1)

#: Valid records in the forms an integrator may write them.
EDGE_VALID = [
    _raw(S, _with(spending_doc(), amount="19.99"), label="19.99 as a JSON number"),
    _raw(S, _with(spending_doc(), amount="0.01"), label="a cent as a number"),
    _raw(S, _with(spending_doc(), amount="1E+3"), label="an exponent"),
    _raw(S, _with(spending_doc(), amount="1.50e1"), label="a fraction and an exponent"),
    _raw(S, _with(spending_doc(), amount="10000000000"), label="the largest amount"),
    _raw(R, _with(repayment_doc(), amount_paid="0"), label="zero paid"),
    _raw(R, _with(repayment_doc(), amount_paid="-0.0"), label="minus zero paid"),
    _raw(R, _with(repayment_doc(), outstanding_balance="9999999999.99"), label="max balance"),
    _raw(S, json.dumps(spending_doc(amount="7.500")), label="trailing zeros in a string"),
    _raw(S, json.dumps(spending_doc(amount="0012.3")), label="leading zeros in a string"),
    _raw(S, json.dumps(spending_doc(amount="10000000000.000")), label="largest, 3 zeros"),
    _raw(A, json.dumps(asset_doc(value="0")), label="a zero asset"),
    _raw(A, json.dumps({k: v for k, v in asset_doc().items() if k != "verified"})),
    _raw(S, json.dumps({k: v for k, v in spending_doc().items() if k != "merchant_id"})),
    _raw(S, json.dumps(spending_doc(merchant_id=None)), label="null merchant"),
    _raw(S, json.dumps({**spending_doc(), "channel": "app", "v": [1, {"x": None}]})),
    _raw(S, json.dumps(spending_doc(occurred_at="2026-11-27t09:30:00.123456789z"))),
    _raw(S, json.dumps(spending_doc(occurred_at="2026-11-28T01:00:00+23:59"))),
    _raw(S, json.dumps(spending_doc(occurred_at="2026-11-27T09:30:00-00:00"))),
    _raw(S, json.dumps(spending_doc(occurred_at="2024-02-29T09:30:00Z")), label="leap day"),
    _raw(Q, json.dumps(request_doc(amount="0.01", term_months=36))),
    _raw(Q, _with(request_doc(), amount="5000", term_months="1")),
    _raw(R, _with(repayment_doc(), days_past_due="36500")),
    _raw(R, json.dumps(repayment_doc(event_id="a" * 64, loan_id="A.b:c-d_9"))),
    _raw(S, json.dumps(spending_doc(user_id="U_" + "x" * 62)), key=b"U_" + b"x" * 62),
]

#: Rejections the published schemas make, beyond the corpus of tests/corpus.py.
EDGE_REJECTED = [
    _raw(S, json.dumps(spending_doc(amount="100.00\n")), label="money string, newline"),
    _raw(S, json.dumps(spending_doc(amount="1.")), label="money string ending in a dot"),
    _raw(S, json.dumps(spending_doc(amount=".5")), label="money string without units"),
    _raw(S, json.dumps(spending_doc(amount="1,000.00")), label="thousands separator"),
    _raw(S, json.dumps(spending_doc(amount="+5")), label="a plus sign"),
    _raw(S, json.dumps(spending_doc(amount="12345678901")), label="11 digits"),
    _raw(S, json.dumps(spending_doc(amount="0.00")), label="zero spending as a string"),
    _raw(S, json.dumps(spending_doc(amount="7.5e1")), label="exponent in a string"),
    _raw(S, _with(spending_doc(), amount="-0.0"), label="minus zero spending"),
    _raw(S, _with(spending_doc(), amount="10000000000.01"), label="over the maximum"),
    _raw(S, json.dumps(spending_doc(user_id="u-1\n")), label="user id, newline"),
    _raw(S, json.dumps(spending_doc(event_id="s-1\n")), label="event id, newline"),
    _raw(S, json.dumps(spending_doc(category="groceries\n")), label="category, newline"),
    _raw(S, json.dumps(spending_doc(occurred_at="2026-11-27T09:30:00Z\n"))),
    _raw(S, json.dumps(spending_doc(occurred_at="2026-02-30T09:30:00Z")), label="Feb 30"),
    _raw(S, json.dumps(spending_doc(occurred_at="2025-02-29T09:30:00Z")), label="Feb 29"),
    _raw(S, json.dumps(spending_doc(occurred_at="2026-11-27T23:59:60Z")), label="leap second"),
    _raw(S, json.dumps(spending_doc(occurred_at="2026-11-27T09:30:00+00:60"))),
    _raw(S, json.dumps(spending_doc(occurred_at="2026-11-27T09:30:00.Z")), label="empty fraction"),
    _raw(A, json.dumps(asset_doc(verified=None)), label="null verified"),
    _raw(A, json.dumps(asset_doc(verified=1)), label="1 for true"),
    _raw(Q, json.dumps(request_doc(displayed_status="OPEN")), label="upper-case enum"),
    _raw(Q, _with(request_doc(), term_months="true"), label="true for a term"),
    _raw(R, _with(repayment_doc(), days_past_due="36501"), label="days past due 36501"),
]

#: What the schemas cannot express, shown with one record of each class: both validators
#: accept these, creditline does not (docs/contract.md says so).
SERVICE_ONLY_EXAMPLES: list[tuple[Record, ServiceOnly]] = [
    (_raw(S, json.dumps(spending_doc()), key=b"u-2"), ServiceOnly.ENVELOPE),
    (_raw(S, json.dumps(spending_doc()), key=b""), ServiceOnly.ENVELOPE),
    (_raw(S, json.dumps(spending_doc(occurred_at="2019-01-01T00:00:00Z"))), ServiceOnly.CLOCK),
    (_raw(S, json.dumps(spending_doc(occurred_at="2027-01-01T00:00:00Z"))), ServiceOnly.CLOCK),
    (
        _raw(S, json.dumps(spending_doc()).replace('"s-1"', '"s-1", "event_id": "s-2"')),
        ServiceOnly.DUPLICATE_KEY,
    ),
    (_raw(S, _with(spending_doc(), amount="0.125")), ServiceOnly.NUMBER_PRECISION),
    (_raw(S, _with(spending_doc(), amount="19.999999999999999999")), ServiceOnly.NUMBER_PRECISION),
    (_raw(S, _with(spending_doc(), amount="10000000000.0000001")), ServiceOnly.NUMBER_PRECISION),
    (
        _raw(R, _with(repayment_doc(), amount_paid="1e-1000000000000000000000000")),
        ServiceOnly.NUMBER_PRECISION,
    ),
    (_raw(R, _with(repayment_doc(), days_past_due="0.0")), ServiceOnly.INTEGRAL_NUMBER),
    (_raw(Q, _with(request_doc(), term_months="1e1")), ServiceOnly.INTEGRAL_NUMBER),
]


def simulation_records(users: int = 120) -> list[Record]:
    """What `creditline simulate` publishes: every persona's events and loan requests."""
    models = [*population_events(users, 7, NOW), *loan_requests(users, 7, NOW)]
    return [
        Record(f"simulated {r.model.__class__.__name__}", r.kind, r.key, r.value)
        for r in map(to_record, models)
    ]


def hostile_records() -> list[Record]:
    """Every value of the hostile-records corpus (tests/e2e/test_hostile_records.py) that
    fits the decoder's limits, with its key, as read from its topic."""
    from tests.e2e.test_hostile_records import hostile_corpus

    topics = Topics.from_settings(Settings())
    kinds = {topics.topic_for(kind): kind for kind in RecordKind}
    sent, _ = hostile_corpus(Settings(), NOW)
    return [
        Record(f"hostile #{i}", kinds[s.topic], s.key, s.value)
        for i, s in enumerate(sent)
        if s.value is None or len(s.value) <= LIMITS.max_record_bytes
    ]


def corpus_records() -> list[Record]:
    return [Record(b.name, b.kind, b.key, b.value) for b in bad_corpus(NOW)]


class Ledger:
    """Records checked with python-jsonschema at once and Ajv in one batch at the end:
    creditline's verdict decides what both must say."""

    def __init__(self) -> None:
        self.cases: list[tuple[str, str, bytes | None, bool | None]] = []
        self.counts: Counter[str] = Counter()

    def check(self, record: Record, *, must_accept: bool = False) -> None:
        code = record.verdict()
        if must_accept:
            assert code is None, f"{record.label}: creditline rejects it with {code}"
        expected: bool | None
        if code is None:
            expected = True
        elif service_only(code, record.value) is not None:
            expected = None  # no claim: the schema cannot see this fault
            self.counts["service only"] += 1
        else:
            expected = False
        valid = jsonschema_valid(record.schema, record.value)
        if expected is not None:
            assert valid == expected, (
                f"{record.label}: creditline says {code or 'accepted'}, "
                f"python-jsonschema says {'valid' if valid else 'invalid'}: {record.value!r:.300}"
            )
        self.counts["accepted" if code is None else "rejected"] += 1
        self.cases.append((record.label, record.schema, record.value, expected))

    def check_output(self, name: str, value: bytes, expected: bool, label: str) -> None:
        valid = jsonschema_valid(name, value)
        assert valid == expected, f"{label}: python-jsonschema says {valid}: {value!r:.400}"
        self.counts[f"{name} {'valid' if expected else 'invalid'}"] += 1
        self.cases.append((label, name, value, expected))

    def check_with_ajv(self) -> int:
        run = ajv_validate([(name, value) for _, name, value, _ in self.cases])
        for (label, _, value, expected), valid, error in zip(
            self.cases, run.valid, run.errors, strict=True
        ):
            if expected is not None:
                assert valid == expected, f"{label}: Ajv says {valid} ({error}): {value!r:.300}"
        return run.checked


def test_every_schema_is_valid_2020_12_and_formats_are_asserted() -> None:
    for name in CONTRACT_MODELS:
        Draft202012Validator.check_schema(schema(name))
        assert schema(name)["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert CONTRACT_VERSION in schema(name)["$comment"]
    # Without rfc3339-validator installed python-jsonschema skips date-time silently.
    assert "date-time" in Draft202012Validator.FORMAT_CHECKER.checkers
    assert not python_validator("SpendingEvent").is_valid(
        spending_doc(occurred_at="2026-02-30T09:30:00Z")
    )


def test_every_record_creditline_accepts_validates_and_the_rejected_do_not() -> None:
    ledger = Ledger()
    for record in [*EDGE_VALID, *simulation_records()]:
        ledger.check(record, must_accept=True)
    docs = [repayment_doc(), spending_doc(), asset_doc(), request_doc()]
    for kind, doc in zip((R, S, A, Q), docs, strict=True):
        ledger.check(Record(f"builders {kind}", kind, b"u-1", encode(doc)), must_accept=True)
    for record in [*corpus_records(), *hostile_records()]:
        ledger.check(record)
    for record in EDGE_REJECTED:
        assert record.verdict() is not None, record.label
        ledger.check(record)
    for record, fault in SERVICE_ONLY_EXAMPLES:
        code = record.verdict()
        assert code is not None and service_only(code, record.value) is fault, record.label
        assert jsonschema_valid(record.schema, record.value), record.label
        ledger.cases.append((record.label, record.schema, record.value, True))
    checked = ledger.check_with_ajv()
    assert ledger.counts["accepted"] >= 1500, ledger.counts
    assert ledger.counts["rejected"] >= 250, ledger.counts
    assert checked == len(ledger.cases)


# ---- hypothesis: valid records in every form, and mutations of them ----------------------
EVENT_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-"
USER_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
event_ids = st.text(EVENT_ID_CHARS, min_size=1, max_size=64)
user_ids = st.text(USER_ID_CHARS, min_size=1, max_size=64)
HORIZON_SECONDS = int(timedelta(days=1825).total_seconds())


@st.composite
def money_text(draw: st.DrawFn, positive: bool) -> str:
    """An amount as raw JSON text: a number in any notation or a decimal string."""
    cents = draw(st.integers(1 if positive else 0, 10**12))
    units, fraction = divmod(cents, 100)
    plain = [f"{units}.{fraction:02d}"]
    if fraction % 10 == 0:
        plain.append(f"{units}.{fraction // 10}")
    if fraction == 0:
        plain.append(str(units))
    text = draw(st.sampled_from(plain))
    form = draw(st.sampled_from(["number", "exponent", "string", "padded string"]))
    if form == "number":
        return text
    if form == "exponent":
        exact = Decimal(cents).scaleb(-2).normalize()
        return format(exact, "E" if draw(st.booleans()) else "e")
    if form == "padded string":
        zeros = draw(st.integers(0, 3))
        trailing = ("." if "." not in text else "") + "0" * draw(st.integers(1, 3))
        return json.dumps("0" * zeros + text + trailing)
    return json.dumps(text)


@st.composite
def timestamps(draw: st.DrawFn) -> str:
    """An RFC 3339 time inside creditline's window, in any offset, case and precision."""
    back = draw(st.integers(-240, HORIZON_SECONDS))
    moment = NOW - timedelta(seconds=back)
    offset = draw(st.none() | st.integers(-(24 * 60 - 1), 24 * 60 - 1))
    local = moment + timedelta(minutes=offset or 0)
    text = f"{local.year:04d}-{local:%m-%d}{draw(st.sampled_from('Tt'))}{local:%H:%M:%S}"
    digits = draw(st.integers(0, 9))
    if digits:
        text += "." + draw(st.text("0123456789", min_size=digits, max_size=digits))
    if offset is None:
        return text + draw(st.sampled_from("Zz"))
    sign = "-" if offset < 0 else "+"
    hours, minutes = divmod(abs(offset), 60)
    return f"{text}{sign}{hours:02d}:{minutes:02d}"


def _json_values(leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        st.none() | st.booleans() | st.text() | leaves,
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(st.text(max_size=8), children, max_size=3)
        ),
        max_leaves=8,
    )


#: Anything valid JSON can hold (unknown fields are ignored).
finite_json_values = _json_values(
    st.integers(-(2**63), 2**63) | st.floats(allow_nan=False, allow_infinity=False)
)
#: The same with Python's non-JSON Infinity and integers of any size.
json_values = _json_values(st.integers() | st.floats(allow_nan=False))


@st.composite
def valid_documents(draw: st.DrawFn) -> tuple[RecordKind, str, dict[str, Any], dict[str, str]]:
    """(kind, user, JSON fields, fields as raw JSON text) of a record creditline accepts."""
    kind = draw(st.sampled_from(list(RecordKind)))
    user = draw(user_ids)
    doc: dict[str, Any] = {"user_id": user}
    raw: dict[str, str] = {}
    if kind is RecordKind.LOAN_REQUEST:
        doc |= {"request_id": draw(event_ids), "requested_at": draw(timestamps())}
        doc["displayed_status"] = draw(st.sampled_from(["open", "closed", "frozen", "unknown"]))
        raw |= {"amount": draw(money_text(True)), "term_months": str(draw(st.integers(1, 36)))}
    else:
        doc |= {"event_id": draw(event_ids), "occurred_at": draw(timestamps())}
    if kind is RecordKind.REPAYMENT:
        doc["loan_id"] = draw(event_ids)
        for name in ("amount_due", "amount_paid", "outstanding_balance"):
            raw[name] = draw(money_text(False))
        raw["days_past_due"] = str(draw(st.integers(0, 36500)))
    elif kind is RecordKind.SPENDING:
        raw["amount"] = draw(money_text(True))
        doc["category"] = draw(st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=32))
        merchant = draw(st.sampled_from(["absent", "null", "id"]))
        if merchant != "absent":
            doc["merchant_id"] = None if merchant == "null" else draw(event_ids)
    elif kind is RecordKind.ASSET:
        doc["asset_type"] = draw(st.sampled_from(["deposit", "investment", "property", "income"]))
        raw["value"] = draw(money_text(False))
        if draw(st.booleans()):
            doc["verified"] = draw(st.booleans())
    known = set(doc) | set(raw) | {"verified", "merchant_id"}
    extra = draw(st.dictionaries(st.text(max_size=10), finite_json_values, max_size=2))
    doc |= {k: v for k, v in extra.items() if k not in known and "@@" not in k}
    return kind, user, doc, raw


def test_hypothesis_valid_records_validate() -> None:
    ledger = Ledger()

    @settings(max_examples=examples(400), database=None)
    @given(valid_documents())
    def property_(case: tuple[RecordKind, str, dict[str, Any], dict[str, str]]) -> None:
        kind, user, doc, raw = case
        value = _with(doc, **raw).encode()
        ledger.check(Record("hypothesis valid", kind, user.encode(), value), must_accept=True)

    property_()
    ledger.check_with_ajv()
    assert ledger.counts["accepted"] >= examples(400)  # every example


HOSTILE_TEXT = [
    '" 7.50 "',
    '"7.5\\n"',
    '"1e3"',
    '"-1"',
    '""',
    '"u-1\\n"',
    '"0.001"',
    '"1.005"',
    "-1",
    "0.125",
    "1.0",
    "1e2",
    "-0.0",
    "1e309",
    "10000000000.01",
    "true",
    "null",
    "[]",
    "{}",
    '"2026-11-27T09:30:00"',
    '"2026-11-27 09:30:00Z"',
    '"1764236400"',
    '"2026-11-27T09:30Z"',
    '"2026-11-27T09:30:00+0800"',
    '"2026-02-30T09:30:00Z"',
    '"2026-11-27T24:00:00Z"',
    '"2026-11-27T09:30:60Z"',
    '"0000-01-01T00:00:00Z"',
    '"OPEN"',
    '"crypto"',
    '"Food!"',
    '"' + "e" * 65 + '"',
    '"用户"',
    "36501",
    "37",
    "0",
]


@st.composite
def mutated_documents(draw: st.DrawFn) -> tuple[RecordKind, str, str]:
    """A valid record with up to three fields replaced, dropped or set to hostile values."""
    kind, user, doc, raw = draw(valid_documents())
    fields = sorted(set(doc) | set(raw))
    for name in draw(st.lists(st.sampled_from(fields), min_size=1, max_size=3, unique=True)):
        action = draw(st.sampled_from(["drop", "hostile", "arbitrary"]))
        doc.pop(name, None)
        raw.pop(name, None)
        if action == "hostile":
            raw[name] = draw(st.sampled_from(HOSTILE_TEXT))
        elif action == "arbitrary":
            doc[name] = draw(json_values)
    return kind, user, _with(doc, **raw)


def test_hypothesis_mutated_records_are_judged_alike() -> None:
    ledger = Ledger()

    @settings(max_examples=examples(500), database=None)
    @given(mutated_documents())
    def property_(case: tuple[RecordKind, str, str]) -> None:
        kind, user, text = case
        ledger.check(Record("hypothesis mutated", kind, user.encode(), text.encode()))

    property_()
    ledger.check_with_ajv()
    assert ledger.counts["rejected"] >= examples(250)  # at least half of them


# ---- outputs ---------------------------------------------------------------------------
def decisions_and_status_events() -> tuple[list[LoanDecision], list[LineStatusChanged]]:
    """What the core answers and announces for crossing histories and simulated personas."""
    policy = load_default_policy()
    timelines = constant(policy)
    histories = crossing_population(150, 11, NOW)
    for event in population_events(40, 3, NOW, prefix="p"):
        histories.setdefault(event.user_id, []).append(event)
    rng = random.Random(5)
    decisions: list[LoanDecision] = []
    changes: list[LineStatusChanged] = []
    for index, (user, events) in enumerate(sorted(histories.items())):
        at = NOW - timedelta(hours=rng.randint(0, 48))
        request = request_for(user, at, rng)
        before = [e for e in events if e.occurred_at <= at]
        checkpoint = advance(canonical(before), timelines, at, HORIZON)
        decided_at = at + timedelta(milliseconds=rng.randint(1, 900))
        decisions.append(answer(request, checkpoint, timelines, at, decided_at))
        decisions.append(answer(request, checkpoint, timelines, at, decided_at, language="zh"))
        assessment = standing(checkpoint, timelines)
        if assessment is not None:
            history = checkpoint.trajectory.changes
            reasons = status_reasons(assessment, policy)
            if index % 5 == 0:
                reasons = [reason(ReasonCode.LATE_EVENT_RESTATED), *reasons]
            changes.append(
                LineStatusChanged(
                    user_id=user,
                    changed_at=assessment.line.since,
                    previous_status=history[-2].status if len(history) > 1 else None,
                    status=assessment.status,
                    credit_limit=assessment.credit_limit,
                    score=assessment.score,
                    reasons=reasons,
                    policy_version=assessment.policy_version,
                )
            )
    request = LoanRequest.model_validate(request_doc())
    decisions += [
        answer(request, advance([], timelines, NOW, HORIZON), timelines, NOW, NOW),
        decide_untrusted_time(request, NOW, policy),
        decide_score_unavailable(request, NOW, policy),
        decide_policy_unavailable(request, NOW, policy),
        decide_at_capacity(request, NOW, policy, ReasonCode.EVENT_LIMIT_REACHED),
        decide_at_capacity(request, NOW, policy, ReasonCode.LOAN_LIMIT_REACHED),
    ]
    return decisions, changes


def _broken(document: dict[str, Any]) -> Iterable[tuple[str, dict[str, Any]]]:
    """Ways a consumer must not be sent an output, each a copy of ``document``."""
    money = "credit_limit"
    yield "money as a number", {**document, money: 3000}
    yield "money with one place", {**document, money: "3000.0"}
    yield "negative money", {**document, money: "-0.00"}
    yield "money with leading zeros", {**document, money: "03000.00"}
    yield "a score of 349", {**document, "score": 349}
    yield "an unknown status", {**document, "status": "suspended", "effective_status": "x"}
    yield "lower-case code", {**document, "reasons": [{"code": "adverse_x", "text": "t"}]}
    yield "a code with a space", {**document, "reasons": [{"code": "LIMIT EXCEEDED", "text": "t"}]}
    yield "a code of 65 characters", {**document, "reasons": [{"code": "X" * 65, "text": "t"}]}
    yield "a naive time", {**document, "changed_at": "2026-11-28T08:00:00", "decided_at": "x"}
    yield "no user", {k: v for k, v in document.items() if k != "user_id"}


def test_every_output_validates_and_broken_outputs_do_not() -> None:
    decisions, changes = decisions_and_status_events()
    ledger = Ledger()
    codes: Counter[str] = Counter()
    for model, name in [(d, "LoanDecision") for d in decisions] + [
        (c, "LineStatusChanged") for c in changes
    ]:
        value = model.model_dump_json().encode()
        codes.update(r.code for r in model.reasons)
        ledger.check_output(name, value, True, f"{name} {getattr(model, 'request_id', '')}")
        for label, broken in _broken(json.loads(value)):
            ledger.check_output(name, json.dumps(broken).encode(), False, f"{name}: {label}")
    ledger.check_with_ajv()
    # The histories reach the codes of every family the schema describes.
    assert any(c.startswith("ADVERSE_") for c in codes)
    assert any(c.startswith("SEGMENT_") for c in codes)
    assert "LATE_EVENT_RESTATED" in codes and "SCORE_UNAVAILABLE" in codes
    assert {"approved", "declined", "review"} <= {d.outcome.value for d in decisions}


def test_the_schema_lists_every_fixed_reason_code() -> None:
    assert set(FIXED_REASON_CODES) == {code.value for code in ReasonCode}
    assert len(FIXED_REASON_CODES) == len(set(FIXED_REASON_CODES))


def test_the_contract_document_names_the_version_and_every_service_only_rejection() -> None:
    text = (ROOT / "docs" / "contract.md").read_text()
    assert f"`{CONTRACT_VERSION}`" in text
    for kind in ServiceOnly:
        assert kind.value in text, kind
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in changelog
    assert f"contract {CONTRACT_VERSION}" in changelog

"""The published JSON Schemas as other validators read them: python-jsonschema and Ajv.

Both validators see what travels on Kafka: a record's value bytes, decoded as UTF-8 and
parsed as strict JSON (no ``NaN``/``Infinity``, which are not JSON) before any schema is
applied. :func:`service_only` names the rejections only creditline can make; docs/contract.md
lists the same classes.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any, NoReturn

import pytest
from jsonschema import Draft202012Validator

from schemas.export import SCHEMA_DIR
from schemas.models import CONTRACT_MODELS, MONEY_MAX
from streams.core.decoding import RecordKind, RejectCode

ROOT = Path(__file__).resolve().parents[1]
AJV_DIR = ROOT / "tools" / "contract"

SCHEMA_OF_KIND = {
    RecordKind.REPAYMENT: "RepaymentEvent",
    RecordKind.SPENDING: "SpendingEvent",
    RecordKind.ASSET: "AssetEvent",
    RecordKind.LOAN_REQUEST: "LoanRequest",
}
MONEY_FIELDS = frozenset({"amount_due", "amount_paid", "outstanding_balance", "amount", "value"})
INTEGER_FIELDS = frozenset({"days_past_due", "term_months"})


class NotJson(Exception):
    """Bytes that are not a strict UTF-8 JSON document."""


def _no_constants(name: str) -> NoReturn:
    raise NotJson(name)


def parse_strict(value: bytes | None) -> Any:
    """A record's value as any conforming JSON parser reads it, or :class:`NotJson`."""
    if value is None:
        raise NotJson("tombstone")
    try:
        return json.loads(value.decode("utf-8"), parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        # ValueError: malformed, or an integer of more digits than Python converts.
        raise NotJson(type(exc).__name__) from None


@cache
def schema(name: str) -> dict[str, Any]:
    """A published schema file, parsed."""
    loaded: dict[str, Any] = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text())
    return loaded


@cache
def python_validator(name: str) -> Draft202012Validator:
    """python-jsonschema's Draft 2020-12 validator of a schema, asserting formats."""
    return Draft202012Validator(schema(name), format_checker=Draft202012Validator.FORMAT_CHECKER)


def jsonschema_valid(name: str, value: bytes | None) -> bool:
    """Whether python-jsonschema accepts the value bytes (strict JSON first)."""
    try:
        document = parse_strict(value)
    except NotJson:
        return False
    return bool(python_validator(name).is_valid(document))


def ajv_available() -> bool:
    """Ajv installed (``make install``); in CI its absence fails instead of skipping."""
    node = shutil.which("node")
    if node is not None and (AJV_DIR / "node_modules" / "ajv").exists():
        return True
    if os.environ.get("CI"):
        pytest.fail("Ajv is not installed: `make install` installs tools/contract")
    return False


@dataclass(frozen=True)
class AjvRun:
    """What the node script reports."""

    checked: int
    valid: list[bool]
    errors: list[str]


def ajv_validate(cases: Sequence[tuple[str, bytes | None]]) -> AjvRun:
    """Validate ``(schema name, value bytes)`` pairs with Ajv in one node process."""
    if not ajv_available():
        pytest.skip("node or tools/contract/node_modules missing (run `make install`)")
    node = shutil.which("node")
    assert node is not None
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as handle:
        for name, value in cases:
            # A tombstone has no bytes at all: the script finds no JSON in it, as for b"".
            encoded = base64.b64encode(value or b"").decode()
            handle.write(json.dumps({"schema": name, "value": encoded}) + "\n")
        path = Path(handle.name)
    try:
        result = subprocess.run(
            [node, str(AJV_DIR / "validate.mjs"), str(SCHEMA_DIR), str(path)],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
    finally:
        path.unlink()
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert sorted(report["schemas"]) == sorted(CONTRACT_MODELS)
    assert report["checked"] == len(cases)
    return AjvRun(
        report["checked"],
        [r["valid"] for r in report["results"]],
        [r["error"] for r in report["results"]],
    )


class ServiceOnly(StrEnum):
    """Rejections a JSON Schema cannot express: only creditline makes them. The values are
    the headings of docs/contract.md's list."""

    ENVELOPE = "the record's key, headers and size"
    CLOCK = "the time window"
    DUPLICATE_KEY = "a repeated key"
    NUMBER_PRECISION = "a JSON number's exact digits"
    INTEGRAL_NUMBER = "an integer written as 1.0 or 1e2"


_BY_CODE = {
    RejectCode.EMPTY_KEY: ServiceOnly.ENVELOPE,
    RejectCode.KEY_MISMATCH: ServiceOnly.ENVELOPE,
    RejectCode.INVALID_HEADER: ServiceOnly.ENVELOPE,
    RejectCode.OVERSIZED: ServiceOnly.ENVELOPE,
    RejectCode.FUTURE_TIMESTAMP: ServiceOnly.CLOCK,
    RejectCode.ANCIENT_TIMESTAMP: ServiceOnly.CLOCK,
    RejectCode.DUPLICATE_KEY: ServiceOnly.DUPLICATE_KEY,
}


def _exact_numbers(value: bytes) -> dict[str, Any] | None:
    """The document with numbers as exact Decimals (as creditline reads them), if it parses."""
    try:
        parsed = json.loads(value.decode("utf-8"), parse_float=Decimal)
    except (UnicodeDecodeError, ValueError, ArithmeticError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) else None


def _money_number_beyond_a_float(number: Any) -> bool:
    """A money field's JSON number that a validator cannot judge as creditline does: more
    than 2 places (19.99 is no multiple of 0.01 in binary floating point, so schemas do not
    check places of numbers), or outside the range exactly but inside it as a float."""
    if isinstance(number, bool) or not isinstance(number, int | Decimal):
        return False
    exact = Decimal(number)
    if not exact.is_finite():
        return False
    if abs(exact) <= MONEY_MAX and exact != exact.quantize(Decimal("0.01")):
        return True
    approximate = float(exact)
    return (0 <= approximate <= MONEY_MAX) != (0 <= exact <= MONEY_MAX)


def service_only(code: RejectCode, value: bytes | None) -> ServiceOnly | None:
    """The documented class of a rejection no schema can make, or None."""
    if code in _BY_CODE:
        return _BY_CODE[code]
    if value is None:
        return None
    if code is RejectCode.OUT_OF_RANGE and _exact_numbers(value) is None:
        # A number beyond the decimal module's exponents (1e-1000000000000000000000000):
        # JSON parsers read it as 0.0.
        return ServiceOnly.NUMBER_PRECISION
    doc = _exact_numbers(value)
    if doc is None:
        return None
    if code in (RejectCode.TOO_MANY_DECIMALS, RejectCode.AMOUNT_OUT_OF_RANGE) and any(
        _money_number_beyond_a_float(doc.get(f)) for f in MONEY_FIELDS
    ):
        return ServiceOnly.NUMBER_PRECISION
    if code is RejectCode.WRONG_TYPE and any(
        isinstance(doc.get(f), Decimal) and doc[f] == doc[f].to_integral_value()
        for f in INTEGER_FIELDS
    ):
        return ServiceOnly.INTEGRAL_NUMBER
    return None

"""UserState ↔ compact JSON (what is stored in Redis). Pure and exact.

Times are integer microseconds since the epoch (exact and short), money is a decimal
string, decayed counters are floats written with ``repr`` (round-trips exactly).

orjson writes and reads it (several times faster than :mod:`json`); the bytes are the
ones ``json.dumps(state_document(state), separators=(",", ":"))`` writes, and anything
orjson will not read (``NaN``, huge integers) is read by :mod:`json` as before.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson

from schemas.models import EffectiveStatus
from streams.core.scoring import LineStatus
from streams.core.state import AssetSnapshot, LoanSnapshot, UserState
from streams.core.timeline import Trajectory

STATE_FORMAT = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(moment: datetime) -> int:
    """Exact integer microseconds since the epoch of an aware datetime."""
    delta = moment - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    """The UTC datetime of :func:`to_micros`."""
    return _EPOCH + timedelta(microseconds=micros)


def state_document(state: UserState) -> dict[str, Any]:
    """The JSON document of a state (what :func:`encode_state` writes)."""
    return {
        "fmt": STATE_FORMAT,
        "u": state.user_id,
        "a": to_micros(state.as_of),
        "f": to_micros(state.first_event_at),
        "n": [state.repayments, state.spendings, state.asset_updates],
        "d": [state.on_time, state.late, state.missed],
        "s": {str(k): to_micros(v) for k, v in sorted(state.last_delinquency_at.items())},
        "dm": {str(m): d for m, d in sorted(state.delinquency_by_month.items())},
        "sm": {str(m): str(v) for m, v in sorted(state.spend_by_month.items())},
        "l": {
            k: [to_micros(v.occurred_at), v.event_id, str(v.balance)]
            for k, v in sorted(state.loans.items())
        },
        "x": {
            k: [to_micros(v.occurred_at), v.event_id, str(v.value), int(v.verified)]
            for k, v in sorted(state.assets.items())
        },
    }


def _float_json(value: float) -> str:
    # What json.dumps writes for a float (orjson writes some exponents differently).
    return repr(value) if math.isfinite(value) else json.dumps(value)


def encode_state(state: UserState) -> bytes:
    """Serialise a state to compact JSON bytes."""
    doc = state_document(state)
    counters = ",".join(map(_float_json, doc["d"]))
    doc["d"] = orjson.Fragment(f"[{counters}]")
    return orjson.dumps(doc)


def decode_state(raw: bytes | str) -> UserState:
    """Parse :func:`encode_state` output back into a state."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        doc = json.loads(raw)  # NaN and integers beyond 64 bits, or the error json gives
    if doc.get("fmt") != STATE_FORMAT:
        raise ValueError(f"unknown state format {doc.get('fmt')!r}")
    return UserState(
        user_id=doc["u"],
        as_of=from_micros(doc["a"]),
        first_event_at=from_micros(doc["f"]),
        repayments=doc["n"][0],
        spendings=doc["n"][1],
        asset_updates=doc["n"][2],
        on_time=float(doc["d"][0]),
        late=float(doc["d"][1]),
        missed=float(doc["d"][2]),
        last_delinquency_at={int(k): from_micros(v) for k, v in doc["s"].items()},
        delinquency_by_month={int(m): int(d) for m, d in doc["dm"].items()},
        spend_by_month={int(m): Decimal(v) for m, v in doc["sm"].items()},
        loans={
            k: LoanSnapshot(from_micros(v[0]), v[1], Decimal(v[2])) for k, v in doc["l"].items()
        },
        assets={
            k: AssetSnapshot(from_micros(v[0]), v[1], Decimal(v[2]), bool(v[3]))
            for k, v in doc["x"].items()
        },
    )


# ---- the status trajectory ------------------------------------------------------------------
def encode_trajectory(trajectory: Trajectory) -> bytes:
    """A trajectory as compact JSON: ``{"c": [[since, status, settled], ...], "r": reviewed,
    "n": next review}``, instants in integer microseconds (null when absent)."""
    return orjson.dumps(
        {
            "c": [[to_micros(c.since), c.status.value, int(c.settled)] for c in trajectory.changes],
            "r": to_micros(trajectory.reviewed_at) if trajectory.reviewed_at else None,
            "n": to_micros(trajectory.next_review) if trajectory.next_review else None,
        }
    )


def decode_trajectory(raw: bytes | str) -> Trajectory:
    """Parse :func:`encode_trajectory` output."""
    doc = orjson.loads(raw)
    return Trajectory(
        changes=tuple(
            LineStatus(EffectiveStatus(status), from_micros(since), settled=bool(settled))
            for since, status, settled in doc["c"]
        ),
        reviewed_at=from_micros(doc["r"]) if doc["r"] is not None else None,
        next_review=from_micros(doc["n"]) if doc["n"] is not None else None,
    )

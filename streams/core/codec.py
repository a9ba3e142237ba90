"""The fold (:class:`UserState`) and the status history (:class:`Trajectory`) as stored in
Redis: binary, pure and exact, with :mod:`streams.core.binary`'s primitives.

A state (format 2): the format byte; ``as_of`` and ``first_event_at`` (int64 microseconds
since the epoch, UTC); the three event counts (varint); the three decayed counters
(float64, bit for bit); then five maps, each its size (varint) and its entries in key
order: the latest instant per days-past-due level (varint → int64), the worst days past due
per month (varint → varint), spending per month (varint → money), loans (text → int64,
event id text, balance money) and assets (text → int64, event id text, value money, a
verified byte). The user id is the key's, not repeated. About 40 % of the compact JSON
format 1 took.
"""

from __future__ import annotations

from datetime import datetime

from streams.core import binary
from streams.core import trajectory as trajectory_format
from streams.core.instants import from_micros, to_micros
from streams.core.state import AssetSnapshot, LoanSnapshot, UserState
from streams.core.trajectory import Trajectory

STATE_FORMAT = 2


def encode_state(state: UserState) -> bytes:
    """A state as stored: binary (format 2, see the module's docstring), maps in key order
    (the same state always gives the same bytes)."""
    parts = [
        bytes((STATE_FORMAT,)),
        binary.int64(to_micros(state.as_of)),
        binary.int64(to_micros(state.first_event_at)),
        binary.varint(state.repayments),
        binary.varint(state.spendings),
        binary.varint(state.asset_updates),
        binary.float64(state.on_time),
        binary.float64(state.late),
        binary.float64(state.missed),
        binary.varint(len(state.last_delinquency_at)),
    ]
    for level, at in sorted(state.last_delinquency_at.items()):
        parts += [binary.varint(level), binary.int64(to_micros(at))]
    parts.append(binary.varint(len(state.delinquency_by_month)))
    for month, days in sorted(state.delinquency_by_month.items()):
        parts += [binary.varint(month), binary.varint(days)]
    parts.append(binary.varint(len(state.spend_by_month)))
    for month, amount in sorted(state.spend_by_month.items()):
        parts += [binary.varint(month), binary.money(amount)]
    parts.append(binary.varint(len(state.loans)))
    for loan_id, loan in sorted(state.loans.items()):
        parts += [
            binary.text(loan_id),
            binary.int64(to_micros(loan.occurred_at)),
            binary.text(loan.event_id),
            binary.money(loan.balance),
        ]
    parts.append(binary.varint(len(state.assets)))
    for kind, asset in sorted(state.assets.items()):
        parts += [
            binary.text(kind),
            binary.int64(to_micros(asset.occurred_at)),
            binary.text(asset.event_id),
            binary.money(asset.value),
            b"\x01" if asset.verified else b"\x00",
        ]
    return b"".join(parts)


def stored_first_event_at(raw: bytes) -> datetime:
    """A stored state's ``first_event_at``, read without decoding the rest."""
    if raw[:1] != bytes((STATE_FORMAT,)) or len(raw) < 17:
        raise ValueError(f"unknown state format {raw[:1]!r}")
    return from_micros(binary.Reader(raw[9:17]).int64())


def decode_state(raw: bytes, user_id: str) -> UserState:
    """The state :func:`encode_state` wrote, of the user whose key holds it."""
    r = binary.Reader(bytes(raw))
    if not raw or r.byte() != STATE_FORMAT:
        raise ValueError(f"unknown state format {raw[:1]!r}")
    as_of, first = from_micros(r.int64()), from_micros(r.int64())
    repayments, spendings, asset_updates = r.varint(), r.varint(), r.varint()
    on_time, late, missed = r.float64(), r.float64(), r.float64()
    last_delinquency_at = {r.varint(): from_micros(r.int64()) for _ in range(r.varint())}
    delinquency_by_month = {r.varint(): r.varint() for _ in range(r.varint())}
    spend_by_month = {r.varint(): r.money() for _ in range(r.varint())}
    loans = {
        r.text(): LoanSnapshot(from_micros(r.int64()), r.text(), r.money())
        for _ in range(r.varint())
    }
    assets = {
        r.text(): AssetSnapshot(from_micros(r.int64()), r.text(), r.money(), bool(r.byte()))
        for _ in range(r.varint())
    }
    if not r.done():
        raise ValueError("trailing bytes after a stored state")
    return UserState(
        user_id=user_id,
        as_of=as_of,
        first_event_at=first,
        repayments=repayments,
        spendings=spendings,
        asset_updates=asset_updates,
        on_time=on_time,
        late=late,
        missed=missed,
        last_delinquency_at=last_delinquency_at,
        delinquency_by_month=delinquency_by_month,
        spend_by_month=spend_by_month,
        loans=loans,
        assets=assets,
    )


# ---- the status trajectory ------------------------------------------------------------------
#: Each status's code in a stored trajectory (kept here for readers of the codec).
STATUS_CODES = trajectory_format.STATUS_CODES


def encode_trajectory(trajectory: Trajectory) -> bytes:
    """A trajectory as stored: the number of changes (varint); each change's record
    (:mod:`streams.core.trajectory`: ``since`` as int64 microseconds and one byte ``status
    code * 2 + settled``); then a byte of flags (1: a last review instant follows, 2: a next
    review instant follows) and those int64s."""
    reviewed, upcoming = trajectory.reviewed_at, trajectory.next_review
    parts = [
        binary.varint(trajectory.change_count),
        trajectory.records(),
        bytes(((1 if reviewed else 0) | (2 if upcoming else 0),)),
    ]
    if reviewed:
        parts.append(binary.int64(to_micros(reviewed)))
    if upcoming:
        parts.append(binary.int64(to_micros(upcoming)))
    return b"".join(parts)


def decode_trajectory(raw: bytes) -> Trajectory:
    """The trajectory :func:`encode_trajectory` wrote, its changes left as stored until read
    (a visit reads the last alone)."""
    data = bytes(raw)
    r = binary.Reader(data)
    count = r.varint()
    start, end = r.at, r.at + count * trajectory_format.CHANGE.size
    flags = data[end] if end < len(data) else None
    if flags is None:
        raise ValueError("a stored trajectory shorter than its changes")
    r.at = end + 1
    reviewed = from_micros(r.int64()) if flags & 1 else None
    upcoming = from_micros(r.int64()) if flags & 2 else None
    if not r.done():
        raise ValueError("trailing bytes after a stored trajectory")
    return Trajectory.of_records(data[start:end], reviewed, upcoming)

"""A user's status history (:class:`Trajectory`), held as its stored records until read.

A trajectory gains a change every few reviews and is read and written at every visit of
its user. Decoded whole (each change a :class:`LineStatus` with its datetime) and encoded
again, a visit cost more the longer the user's history. Held as its stored change records,
a trajectory decodes what is read alone (its last change for the status; a visit's
intervals are read from the records), and the compiled machine's new changes are appended
as records: a visit costs the same at 3 changes as at 300. ``tests/unit/test_trajectory.py``
holds the two forms equal.

A change record is 9 bytes: ``since`` (int64 microseconds since the epoch, UTC), then one
byte ``status code * 2 + settled`` (:data:`STATUS_CODES`).
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Iterable, Sequence
from datetime import datetime
from operator import attrgetter

from schemas.models import EffectiveStatus
from streams.core.instants import from_micros, to_micros
from streams.core.scoring import LineStatus

#: Each status's code in a stored change (append only: a stored code never changes).
STATUS_CODES: tuple[EffectiveStatus, ...] = (
    EffectiveStatus.OPEN,
    EffectiveStatus.CLOSED,
    EffectiveStatus.FROZEN,
)
STATUS_CODE = {status: code for code, status in enumerate(STATUS_CODES)}
CHANGE = struct.Struct(">qB")
#: Every status byte a stored change may have (``status code * 2 + settled``).
_CODE_BYTES = bytes(range(2 * len(STATUS_CODES)))


def change_record(status_code: int, since_micros: int, settled: bool) -> bytes:
    """One change as stored."""
    return CHANGE.pack(since_micros, status_code * 2 + settled)


def change_records(changes: Iterable[LineStatus]) -> bytes:
    """``changes`` as stored, one record after the other."""
    return b"".join(
        CHANGE.pack(to_micros(c.since), STATUS_CODE[c.status] * 2 + c.settled) for c in changes
    )


def changes_of(records: bytes) -> tuple[LineStatus, ...]:
    """The changes of stored records (:func:`change_records`)."""
    return _decoded(records, 0, len(records) // CHANGE.size)


def _decoded(records: bytes, start: int, stop: int) -> tuple[LineStatus, ...]:
    """The changes of ``records`` from the ``start``-th to before the ``stop``-th."""
    if stop - start == 1:  # the last change, or the one a review added: most reads
        since, code = CHANGE.unpack_from(records, start * CHANGE.size)
        return (LineStatus(STATUS_CODES[code >> 1], from_micros(since), bool(code & 1)),)
    return tuple(
        [
            LineStatus(STATUS_CODES[code >> 1], from_micros(since), bool(code & 1))
            for since, code in CHANGE.iter_unpack(records[start * CHANGE.size : stop * CHANGE.size])
        ]
    )


_FROZEN_CODE = STATUS_CODE[EffectiveStatus.FROZEN]


def record_intervals(known: bytes, new: bytes) -> list[float]:
    """:func:`streams.core.timeline.new_change_intervals` of two trajectories' stored
    records (``known``'s, then ``new``'s): the seconds between each change of ``new`` not in
    ``known`` and the one before it, neither frozen and the later settled. Read from the
    records: a late event's rewritten history is not decoded into datetimes, twice."""
    if new == known:  # most visits: no change
        return []
    size = CHANGE.size
    appended = new.startswith(known)
    # Appended to the known changes (the common case): only the pairs ending in one.
    start = max(len(known) // size - 1, 0) if appended else 0
    seen: set[bytes] = set()
    if not (
        appended
        and (
            not known
            or CHANGE.unpack_from(new, len(known))[0]
            > CHANGE.unpack_from(known, len(known) - size)[0]
        )
    ):
        # Changes are in time order, so appended ones later than the last known change are
        # none of the known ones (a visit never reads the whole history for this); others
        # may be.
        seen = {known[i : i + size] for i in range(0, len(known), size)}
    intervals: list[float] = []
    previous: tuple[int, int] | None = None
    for offset in range(start * size, len(new), size):
        record = new[offset : offset + size]
        since, code = CHANGE.unpack(record)
        if (
            previous is not None
            and code & 1  # settled
            and code >> 1 != _FROZEN_CODE
            and previous[1] >> 1 != _FROZEN_CODE
            and record not in seen
        ):
            # Integer microseconds over 10**6: timedelta.total_seconds()'s very division.
            intervals.append((since - previous[0]) / 1_000_000)
        previous = (since, code)
    return intervals


class _Instants:
    """The ``since`` of each stored change (microseconds), read one at a time: what a
    bisection over a history in time order reads."""

    __slots__ = ("_count", "_records")

    def __init__(self, records: bytes, count: int) -> None:
        self._records = records
        self._count = count

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: int) -> int:
        since: int = CHANGE.unpack_from(self._records, index * CHANGE.size)[0]
        return since


_SINCE = attrgetter("since")


class Trajectory:
    """A user's status machine after its last review instant.

    ``changes`` are the successive line statuses, oldest first (each new status with the
    instant it began; the first is the user's provisional first status). ``reviewed_at`` is
    the last review instant processed; ``next_review`` the next instant at which the status
    could change without a new event (None: never, e.g. no events in the window).

    Made from its changes, or (:meth:`of_records`) from their stored records, which are
    decoded only as far as they are read. Immutable by convention: equal trajectories are
    equal whichever form they hold.
    """

    __slots__ = ("_changes", "_count", "_line", "_records", "next_review", "reviewed_at")

    def __init__(
        self,
        changes: Sequence[LineStatus],
        reviewed_at: datetime | None,
        next_review: datetime | None,
    ) -> None:
        self._changes: tuple[LineStatus, ...] | None = tuple(changes)
        self._records: bytes | None = None
        self._count = len(self._changes)
        self._line = self._changes[-1] if self._changes else None
        self.reviewed_at = reviewed_at
        self.next_review = next_review

    @classmethod
    def of_records(
        cls, records: bytes, reviewed_at: datetime | None, next_review: datetime | None
    ) -> Trajectory:
        """A trajectory whose changes are given as stored (:func:`change_records`); raises
        ValueError for records that are not whole changes of known statuses."""
        count, rest = divmod(len(records), CHANGE.size)
        if rest:
            raise ValueError(f"stored changes of {len(records)} bytes: not whole changes")
        # Every status byte checked now (one pass in C), so a bad one is refused when read
        # from the store rather than when some later visit decodes that change.
        if records[CHANGE.size - 1 :: CHANGE.size].translate(None, _CODE_BYTES):
            raise ValueError("a stored change of an unknown status")
        return cls._of(bytes(records), count, reviewed_at, next_review)

    @classmethod
    def _of(
        cls,
        records: bytes,
        count: int,
        reviewed_at: datetime | None,
        next_review: datetime | None,
    ) -> Trajectory:
        trajectory = cls.__new__(cls)
        trajectory._changes = None
        trajectory._records = records
        trajectory._count = count
        trajectory._line = None  # decoded on first read
        trajectory.reviewed_at = reviewed_at
        trajectory.next_review = next_review
        return trajectory

    @property
    def changes(self) -> tuple[LineStatus, ...]:
        """Every change, oldest first (decoded on first read)."""
        if self._changes is None:
            assert self._records is not None
            self._changes = _decoded(self._records, 0, self._count)
        return self._changes

    @property
    def change_count(self) -> int:
        """How many changes there are (without decoding them)."""
        return self._count

    @property
    def line(self) -> LineStatus | None:
        """The status after the last review (its change alone decoded, once)."""
        if self._line is None and self._count:
            assert self._records is not None
            self._line = _decoded(self._records, self._count - 1, self._count)[0]
        return self._line

    def change_at(self, index: int) -> LineStatus:
        """The ``index``-th change (from 0, oldest first; alone decoded)."""
        if self._changes is not None:
            return self._changes[index]
        if not 0 <= index < self._count:
            raise IndexError(index)
        assert self._records is not None
        return _decoded(self._records, index, index + 1)[0]

    def count_before(self, moment: datetime, *, inclusive: bool = False) -> int:
        """How many changes began before ``moment`` (at or before it, ``inclusive``).
        Changes are in time order: a bisection, which decodes none of them."""
        find = bisect.bisect_right if inclusive else bisect.bisect_left
        if self._changes is not None:
            return find(self._changes, moment, key=_SINCE)
        assert self._records is not None
        return find(_Instants(self._records, self._count), to_micros(moment))

    def prefix(
        self, count: int, reviewed_at: datetime | None, next_review: datetime | None
    ) -> Trajectory:
        """The first ``count`` changes, with the given review instants (in the form this
        trajectory holds: stored records stay undecoded)."""
        if self._changes is not None:
            return Trajectory(self._changes[:count], reviewed_at, next_review)
        assert self._records is not None
        count = max(0, min(count, self._count))
        return Trajectory._of(self._records[: count * CHANGE.size], count, reviewed_at, next_review)

    def records(self) -> bytes:
        """The changes as stored (encoded on first read)."""
        if self._records is None:
            self._records = change_records(self.changes)
        return self._records

    def records_through(self, moment: datetime) -> bytes:
        """The stored records of the changes at or before ``moment`` (none decoded)."""
        return self.records()[: self.count_before(moment, inclusive=True) * CHANGE.size]

    def extended(
        self, added: bytes, reviewed_at: datetime | None, next_review: datetime | None
    ) -> Trajectory:
        """This trajectory with the changes of ``added`` (stored records, as
        :func:`change_record` makes them) after its own, and the given review instants."""
        count = self._count + len(added) // CHANGE.size
        extended = Trajectory._of(self.records() + added, count, reviewed_at, next_review)
        if self._changes is not None:
            # Decoded already (a late event's resumed history): the added ones alone are
            # decoded, rather than the whole history again where it is read next.
            extended._changes = self._changes + changes_of(added) if added else self._changes
        if not added:
            extended._line = self._line
        return extended

    def line_at(self, moment: datetime) -> LineStatus | None:
        """The status at ``moment`` (which must not be after ``reviewed_at``)."""
        count = self.count_before(moment, inclusive=True)
        return self.change_at(count - 1) if count else None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Trajectory):
            return NotImplemented
        if (self.reviewed_at, self.next_review, self._count) != (
            other.reviewed_at,
            other.next_review,
            other._count,
        ):
            return False
        if self._records is not None and other._records is not None:
            return self._records == other._records  # one record per change, and back
        return self.changes == other.changes

    def __hash__(self) -> int:
        return hash((self.changes, self.reviewed_at, self.next_review))

    def __repr__(self) -> str:
        return (
            f"Trajectory(changes={self.changes!r}, reviewed_at={self.reviewed_at!r}, "
            f"next_review={self.next_review!r})"
        )


EMPTY = Trajectory((), None, None)

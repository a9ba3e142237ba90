"""Detecting a dead-letter storm: most recent records rejected (e.g. a bad deploy upstream).

Pure state machine over a sliding window of record outcomes, bounded by count and by age;
the shell logs and exports it, and passes the time in.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field


@dataclass(slots=True)
class _Stamp:
    """``count`` consecutive outcomes (oldest first) that were observed by ``at``."""

    at: float
    count: int


@dataclass
class DeadLetterStormGuard:
    """Counts rejections among the last ``window`` records of the last ``window_seconds``.

    A storm starts when at least ``min_records`` are in the window and the rejected share
    reaches ``ratio``; it ends when the share falls below half of ``ratio`` (hysteresis, so a
    storm is reported once, not on every batch) — also when no record follows: outcomes older
    than ``window_seconds`` leave the window, and an empty window has no rejections.

    ``observe`` takes no time (it is called per record); ``update(now)`` stamps what was
    observed since the previous update with ``now``, so outcomes age at update granularity.
    """

    window: int = 1000
    min_records: int = 100
    ratio: float = 0.5
    window_seconds: float = 60.0
    in_storm: bool = False
    _outcomes: deque[str | None] = field(default_factory=deque)
    _codes: Counter[str] = field(default_factory=Counter)
    #: Groups of the oldest outcomes by when they were stamped; the newest ``_unstamped``
    #: outcomes have not been stamped yet.
    _stamps: deque[_Stamp] = field(default_factory=deque)
    _unstamped: int = 0

    def observe(self, code: str | None) -> None:
        """Record one record's outcome: a reject code, or None when it was accepted."""
        self._outcomes.append(code)
        if code is not None:
            self._codes[code] += 1
        self._unstamped += 1
        if len(self._outcomes) > self.window:
            self._forget_oldest()
            if self._stamps:
                self._stamps[0].count -= 1
                if not self._stamps[0].count:
                    self._stamps.popleft()
            else:
                self._unstamped -= 1

    def _forget_oldest(self) -> None:
        dropped = self._outcomes.popleft()
        if dropped is not None:
            self._codes[dropped] -= 1
            if not self._codes[dropped]:
                del self._codes[dropped]

    def expire(self, now: float) -> None:
        """Stamp the outcomes observed since the last call with ``now`` (seconds, any
        monotonic clock) and forget those stamped ``window_seconds`` or more before it."""
        if self._unstamped:
            self._stamps.append(_Stamp(now, self._unstamped))
            self._unstamped = 0
        horizon = now - self.window_seconds
        while self._stamps and self._stamps[0].at <= horizon:
            for _ in range(self._stamps.popleft().count):
                self._forget_oldest()

    @property
    def records(self) -> int:
        """Outcomes in the window."""
        return len(self._outcomes)

    @property
    def rejected_share(self) -> float:
        """Share of rejected records in the window (0 when empty)."""
        if not self._outcomes:
            return 0.0
        return sum(self._codes.values()) / len(self._outcomes)

    def top_codes(self, n: int = 3) -> list[tuple[str, int]]:
        """The most frequent reject codes in the window."""
        return self._codes.most_common(n)

    def update(self, now: float) -> bool | None:
        """Expire old outcomes and re-evaluate; returns True when a storm starts, False when
        it ends, else None."""
        self.expire(now)
        share = self.rejected_share
        if not self.in_storm and len(self._outcomes) >= self.min_records and share >= self.ratio:
            self.in_storm = True
            return True
        if self.in_storm and share < self.ratio / 2:
            self.in_storm = False
            return False
        return None

"""Detecting a dead-letter storm: most recent records rejected (e.g. a bad deploy upstream).

Pure state machine over a sliding window of record outcomes; the shell logs and exports it.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field


@dataclass
class DeadLetterStormGuard:
    """Counts rejections among the last ``window`` records.

    A storm starts when at least ``min_records`` were seen and the rejected share reaches
    ``ratio``; it ends when the share falls below half of ``ratio`` (hysteresis, so a storm
    is reported once, not on every batch).
    """

    window: int = 1000
    min_records: int = 100
    ratio: float = 0.5
    in_storm: bool = False
    _outcomes: deque[str | None] = field(default_factory=deque)
    _codes: Counter[str] = field(default_factory=Counter)

    def observe(self, code: str | None) -> None:
        """Record one record's outcome: a reject code, or None when it was accepted."""
        self._outcomes.append(code)
        if code is not None:
            self._codes[code] += 1
        if len(self._outcomes) > self.window:
            dropped = self._outcomes.popleft()
            if dropped is not None:
                self._codes[dropped] -= 1
                if not self._codes[dropped]:
                    del self._codes[dropped]

    @property
    def rejected_share(self) -> float:
        """Share of rejected records in the window (0 when empty)."""
        if not self._outcomes:
            return 0.0
        return sum(self._codes.values()) / len(self._outcomes)

    def top_codes(self, n: int = 3) -> list[tuple[str, int]]:
        """The most frequent reject codes in the window."""
        return self._codes.most_common(n)

    def update(self) -> bool | None:
        """Re-evaluate; returns True when a storm starts, False when it ends, else None."""
        share = self.rejected_share
        if not self.in_storm and len(self._outcomes) >= self.min_records and share >= self.ratio:
            self.in_storm = True
            return True
        if self.in_storm and share < self.ratio / 2:
            self.in_storm = False
            return False
        return None

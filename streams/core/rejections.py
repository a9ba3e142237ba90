"""Rejected records logged as rate-limited summaries, not one line each. Pure.

A producer sending garbage at full speed made the worker log a line per record (20,000 lines
in 6 s): the log drowned and the disk filled while the metrics already counted them. Now the
first rejection after a quiet spell is reported at once, then at most one line per interval:
codes and counts only, never a key, a value or a user id.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


def summary_line(counts: Counter[str], seconds: float) -> str:
    """``dead-lettered 1,234 records in the last 10 s: NOT_JSON 1,200, KEY_MISMATCH 34``."""
    total = sum(counts.values())
    span = f" in the last {seconds:.0f} s" if seconds >= 1 else ""
    codes = ", ".join(f"{code} {n:,}" for code, n in counts.most_common())
    return f"dead-lettered {total:,} record{'s' if total != 1 else ''}{span}: {codes}"


@dataclass
class RejectionSummary:
    """Counts rejections by code; a summary line is due at most once per ``interval`` seconds
    (and at once for the first rejection after a quiet ``interval``)."""

    interval: float = 10.0
    _counts: Counter[str] = field(default_factory=Counter)
    _first_at: float | None = None  # first rejection counted since the last line
    _last_line_at: float | None = None

    def add(self, code: str, now: float) -> str | None:
        """Count one rejection at ``now`` (seconds, any monotonic clock); the line to log if
        one is due."""
        self._counts[code] += 1
        if self._first_at is None:
            self._first_at = now
        return self.due(now)

    def due(self, now: float) -> str | None:
        """The summary of the rejections counted so far, if any and if the last line is at
        least ``interval`` old; counting starts afresh after it. Call it now and then even
        without rejections, or the end of a burst is never reported."""
        if not self._counts or self._first_at is None:
            return None
        if self._last_line_at is not None and now - self._last_line_at < self.interval:
            return None
        line = summary_line(self._counts, now - self._first_at)
        self._counts.clear()
        self._first_at = None
        self._last_line_at = now
        return line

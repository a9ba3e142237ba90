"""The dead-letter header layout (ours first, the producer's under a prefix of their own) and
which records ``dlq`` reads. Pure.

The worker's headers (``error.code``, ``source.topic``…) say why a record was rejected
and where it came from, and ``dlq redrive`` publishes to that source: a producer that could
set them could make an operator publish its record anywhere (the policy topic included).
So the producer's headers never keep their names in a dead letter, and readers take the
worker's headers only from where the worker put them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from schemas.dead_letter import DEAD_LETTER_HEADERS, HEADER_OMITTED, ORIGINAL_HEADER_PREFIX

Headers = Sequence[tuple[str, bytes]]


class Layout(Enum):
    """How a dead letter's headers are laid out."""

    #: The worker's six headers, then the producer's under ``original.``.
    PREFIXED = "prefixed"
    #: Older workers: the producer's headers verbatim, then the worker's six (still retained
    #: on the topic for the retention period; a producer may have forged names there).
    LEGACY = "legacy"
    #: Neither: not written by a creditline worker, nothing in it is trusted.
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class ParsedHeaders:
    """A dead letter's headers split into the worker's (as text) and the producer's."""

    layout: Layout
    ours: dict[str, str]
    theirs: tuple[tuple[str, bytes], ...]


def dead_letter_headers(
    ours: Sequence[tuple[str, str]], theirs: Headers
) -> list[tuple[str, bytes]]:
    """The worker's headers, then each producer header renamed with ``original.``."""
    return [
        *((name, value.encode()) for name, value in ours),
        *((ORIGINAL_HEADER_PREFIX + name, value) for name, value in theirs),
    ]


def parse_headers(headers: Headers) -> ParsedHeaders:
    """Which headers the worker wrote and which the producer had, by position.

    A name alone proves nothing (older dead letters carry producers' headers verbatim), so
    the worker's headers are taken only where a worker puts them: the six names in order at
    the end (legacy) or at the start followed by prefixed headers only.
    """
    n = len(DEAD_LETTER_HEADERS)
    names = tuple(name for name, _ in headers)

    def text(block: Headers) -> dict[str, str]:
        return {name: value.decode(errors="replace") for name, value in block}

    # The worker may add one header of its own after the six: what it left out of a record
    # too large to publish whole.
    m = n + 1 if names[n : n + 1] == (HEADER_OMITTED,) else n
    rest = headers[m:]
    if names[:n] == DEAD_LETTER_HEADERS and all(
        name.startswith(ORIGINAL_HEADER_PREFIX) for name, _ in rest
    ):
        theirs = tuple((name.removeprefix(ORIGINAL_HEADER_PREFIX), value) for name, value in rest)
        return ParsedHeaders(Layout.PREFIXED, text(headers[:m]), theirs)
    # A legacy letter never matches the above (unless it has no producer headers, when both
    # read the same): its last six headers, the worker's, are not prefixed.
    if names[-n:] == DEAD_LETTER_HEADERS:
        return ParsedHeaders(Layout.LEGACY, text(headers[-n:]), tuple(headers[:-n]))
    return ParsedHeaders(Layout.UNKNOWN, {}, ())


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d{1,9})([smhdw])")


def parse_since(text: str, now: datetime) -> datetime:
    """``--since``: a duration back from ``now`` (``90s``, ``30m``, ``2h``, ``7d``, ``1w``) or
    an RFC 3339 time with an offset (``2026-11-30T08:00:00Z``). Raises ValueError."""
    text = text.strip()
    if match := _DURATION.fullmatch(text):
        return now - timedelta(seconds=int(match[1]) * _UNITS[match[2]])
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a duration (30m, 2h, 7d) nor an RFC 3339 time"
        ) from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset (add Z or +hh:mm)")
    return moment


def read_ranges(
    starts: Mapping[int, int], ends: Mapping[int, int], limit: int
) -> dict[int, tuple[int, int]]:
    """Per partition, the offsets ``[first, end)`` to read for the newest ``limit`` records of
    the window ``[start, end)``: at most ``limit`` per partition, so at most partitions ×
    ``limit`` in all, whatever the topic holds (the newest ``limit`` overall are among them)."""
    return {p: (max(starts[p], end - limit), end) for p, end in ends.items() if starts[p] < end}

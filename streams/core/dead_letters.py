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
from typing import Protocol

from schemas import dead_letter as dl
from schemas.dead_letter import DEAD_LETTER_HEADERS, HEADER_OMITTED, ORIGINAL_HEADER_PREFIX

Headers = Sequence[tuple[str, bytes]]


class Rejected(Protocol):
    """What dead-lettering needs of a consumed record (an ``InboundRecord``)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Headers: ...


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


def layout_headers(ours: Sequence[tuple[str, str]], theirs: Headers) -> list[tuple[str, bytes]]:
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


def dead_letter_headers(
    record: Rejected, code: str, message: str, rejected_at: datetime
) -> list[tuple[str, bytes]]:
    """Ours naming the error and where the record came from, then the record's own headers
    under ``original.`` (see :mod:`streams.core.dead_letters`: never confusable with ours)."""
    ours = [
        (dl.HEADER_ERROR_CODE, code),
        (dl.HEADER_ERROR_MESSAGE, message),
        (dl.HEADER_SOURCE_TOPIC, record.topic),
        (dl.HEADER_SOURCE_PARTITION, str(record.partition)),
        (dl.HEADER_SOURCE_OFFSET, str(record.offset)),
        (dl.HEADER_REJECTED_AT, rejected_at.isoformat()),
    ]
    return layout_headers(ours, record.headers)


#: What a record needs beyond its key, value and headers (batch and record framing), and
#: each header beyond its name and value (generously).
_RECORD_FRAMING = 512
_HEADER_FRAMING = 10


def _size(key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]) -> int:
    framing = _RECORD_FRAMING + _HEADER_FRAMING * len(headers)
    names = sum(len(name.encode("utf-8", "backslashreplace")) for name, _ in headers)
    return framing + len(key or b"") + len(value or b"") + names + sum(len(v) for _, v in headers)


def fit_dead_letter(
    record: Rejected, headers: Sequence[tuple[str, bytes]], max_bytes: int
) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
    """Key, value and headers of ``record``'s dead letter, within ``max_bytes``.

    ``headers`` are :func:`dead_letter_headers`: the worker's six, then the record's own. A
    record can be larger than any topic accepts when it arrived compressed (20 MiB of zeros
    fit in a 1 KiB zstd batch), and dead letters are published as they are: publishing it
    whole would fail and stop the worker. Such a dead letter leaves out its value, then if
    need be its key and its own headers, and names what it left out in
    :data:`~schemas.dead_letter.HEADER_OMITTED`, right after the worker's six headers.

    aiokafka sends no record without both a key and a value, which the Java client and
    librdkafka do send (a keyless tombstone): its dead letter has an empty value.
    """
    key, value = record.key, record.value
    cut = len(dl.DEAD_LETTER_HEADERS)
    ours, theirs = list(headers[:cut]), list(headers[cut:])
    if key is None and value is None:
        value = b""
    if _size(key, value, headers) <= max_bytes:
        return key, value, list(headers)
    omitted = [f"value:{len(value or b'')}"]
    value = None
    if _size(key, value, headers) + _HEADER_FRAMING + 64 > max_bytes:  # room for omitted
        omitted += [f"key:{len(key or b'')}", f"headers:{len(record.headers)}"]
        key, theirs = None, []
    value = b"" if key is None else value
    return key, value, [*ours, (dl.HEADER_OMITTED, ",".join(omitted).encode()), *theirs]


def dead_letter_record(
    record: Rejected, code: str, message: str, rejected_at: datetime, max_bytes: int
) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
    """Key, value and headers of ``record``'s dead letter (see :func:`fit_dead_letter`)."""
    return fit_dead_letter(
        record, dead_letter_headers(record, code, message, rejected_at), max_bytes
    )

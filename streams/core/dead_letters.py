"""The dead-letter header layout: ours first, the producer's under a prefix of their own.

Pure. The worker's headers (``error.code``, ``source.topic``…) say why a record was rejected
and where it came from, and ``dlq redrive`` publishes to that source: a producer that could
set them could make an operator publish its record anywhere (the policy topic included).
So the producer's headers never keep their names in a dead letter, and readers take the
worker's headers only from where the worker put them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from schemas.dead_letter import DEAD_LETTER_HEADERS, ORIGINAL_HEADER_PREFIX

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

    rest = headers[n:]
    if names[:n] == DEAD_LETTER_HEADERS and all(
        name.startswith(ORIGINAL_HEADER_PREFIX) for name, _ in rest
    ):
        theirs = tuple((name.removeprefix(ORIGINAL_HEADER_PREFIX), value) for name, value in rest)
        return ParsedHeaders(Layout.PREFIXED, text(headers[:n]), theirs)
    # A legacy letter never matches the above (unless it has no producer headers, when both
    # read the same): its last six headers, the worker's, are not prefixed.
    if names[-n:] == DEAD_LETTER_HEADERS:
        return ParsedHeaders(Layout.LEGACY, text(headers[-n:]), tuple(headers[:-n]))
    return ParsedHeaders(Layout.UNKNOWN, {}, ())

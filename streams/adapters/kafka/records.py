"""Kafka record parsing that survives header names that are not UTF-8.

Kafka defines a header name as a UTF-8 string, but brokers do not check it, and librdkafka
clients (``kcat -H``) write whatever bytes they are given. aiokafka 0.14 decodes header names
strictly while it parses a fetched batch, in its C extension as in Python, so one such record
raises ``UnicodeDecodeError`` out of ``getmany()`` — of the events consumer, Faust's consumer,
replay and every CLI reader alike — on every fetch of its partition: no consumer can get past
it, and the worker stops.

:func:`install` gives aiokafka's fetcher a ``MemoryRecords`` whose batches are parsed as
before by aiokafka's C parser and, only when that fails on a header name, again by aiokafka's
Python parser with header names decoded with ``surrogateescape``: the invalid bytes become lone
surrogates, so the name keeps its bytes (``name.encode("utf-8", "surrogateescape")``) and can
never pass for valid text. The decoder dead-letters such a record (``INVALID_HEADER``).

It is installed when :mod:`streams.adapters.kafka.client` is imported, which every Kafka client
of creditline is built with, so it covers every consumer in the process. Written against
aiokafka 0.14.0 (pinned); ``tests/unit/test_tolerant_records.py`` fails if an upgrade changes
what it relies on.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, SupportsIndex

from aiokafka.consumer import fetcher
from aiokafka.errors import CorruptRecordException
from aiokafka.record import default_records, memory_records


class _SurrogateEscapingBuffer(bytearray):
    """A batch buffer whose slices decode with ``surrogateescape``: aiokafka's Python parser
    reads a header name as ``buffer[start:end].decode("utf-8")``."""

    def __getitem__(self, index: SupportsIndex | slice) -> Any:
        item = super().__getitem__(index)
        return _SurrogateEscapingBuffer(item) if isinstance(index, slice) else item

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return bytearray.decode(self, encoding, "surrogateescape")


class _TolerantBatch(default_records._DefaultRecordBatchPy):  # type: ignore[misc]
    """aiokafka's Python batch parser, reading header names with ``surrogateescape``."""

    _buffer: bytearray

    def _maybe_uncompress(self) -> None:
        super()._maybe_uncompress()
        if not isinstance(self._buffer, _SurrogateEscapingBuffer):
            self._buffer = _SurrogateEscapingBuffer(self._buffer)


def _bad_header_name(error: Exception) -> bool:
    # The C parser lets the UnicodeDecodeError out; the Python one wraps it.
    return isinstance(error, UnicodeDecodeError) or isinstance(error.__cause__, UnicodeDecodeError)


class _FallbackBatch:
    """A batch read by aiokafka's (C) parser until a header name fails to decode, and from
    that record on by :class:`_TolerantBatch`. Everything else is the parsed batch's."""

    def __init__(self, batch: Any, raw: memoryview) -> None:
        self._batch = batch
        self._raw = raw

    def __getattr__(self, name: str) -> Any:
        return getattr(self._batch, name)

    def __iter__(self) -> Iterator[Any]:
        done = 0
        try:
            for record in self._batch:
                yield record
                done += 1
            return
        except (UnicodeDecodeError, CorruptRecordException) as error:
            if not _bad_header_name(error):
                raise
        records = iter(_TolerantBatch(self._raw))
        for _ in range(done):
            next(records)
        yield from records


class TolerantMemoryRecords(memory_records._MemoryRecordsPy):  # type: ignore[misc]
    """aiokafka's ``MemoryRecords`` with each v2 batch wrapped in a :class:`_FallbackBatch`.

    Slicing a fetch response into batches is per batch, not per record: done in Python here
    (aiokafka's own Python code). With the wrapper's generator, reading a record costs ~130 ns
    instead of ~65 (a worker spends ~90 µs per event).
    """

    def next_batch(self) -> Any:
        raw = self._next_slice
        batch = super().next_batch()
        if isinstance(batch, memory_records.DefaultRecordBatch):
            return _FallbackBatch(batch, raw)
        return batch  # None, or a v0/v1 batch: those have no headers


def install() -> None:
    """Make every aiokafka consumer in this process parse fetched records tolerantly
    (idempotent)."""
    fetcher.MemoryRecords = TolerantMemoryRecords


def installed() -> bool:
    """Whether :func:`install` is in effect."""
    return fetcher.MemoryRecords is TolerantMemoryRecords

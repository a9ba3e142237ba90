"""The tolerant record parser: a header name that is not UTF-8 no longer stops a consumer."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from aiokafka.consumer import fetcher
from aiokafka.record import default_records, memory_records
from aiokafka.structs import TopicPartition

import streams.adapters.kafka.client  # noqa: F401  (importing it installs the parser)
from streams.adapters.kafka.records import TolerantMemoryRecords, installed

BAD_NAME = b"n\xffame"
CODECS = {
    "none": default_records.DefaultRecordBase.CODEC_NONE,
    "gzip": default_records.DefaultRecordBase.CODEC_GZIP,
    "snappy": default_records.DefaultRecordBase.CODEC_SNAPPY,
    "lz4": default_records.DefaultRecordBase.CODEC_LZ4,
    "zstd": default_records.DefaultRecordBase.CODEC_ZSTD,
}


class RawName(str):
    """A header name that aiokafka's Python batch builder writes as these raw bytes."""

    raw: bytes

    def __new__(cls, raw: bytes) -> RawName:
        name = super().__new__(cls, raw.decode("latin-1"))
        name.raw = raw
        return name

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self.raw


def batch(
    codec: int, headers_of: dict[int, list[tuple[str, bytes | None]]], base_offset: int = 0
) -> bytes:
    """One v2 batch of 20 records (compressible) from ``base_offset``, record i with
    ``headers_of.get(i, [])``."""
    builder = default_records._DefaultRecordBatchBuilderPy(
        magic=2,
        compression_type=codec,
        is_transactional=0,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 20,
    )
    for i in range(20):
        value = b'{"event_id": "e-%d", "user_id": "u-1"}' % i
        builder.append(i, 1_700_000_000_000 + i, b"u-1", value, headers_of.get(i, []))
    built = builder.build()
    struct.pack_into(">q", built, 0, base_offset)  # the broker's part (outside the CRC)
    return bytes(built)


def consume(records_class: Any, *batches: bytes) -> list[Any]:
    """Every record of these batches, as aiokafka's fetcher hands them to ``getmany``."""
    records = fetcher.PartitionRecords(
        TopicPartition("t", 0),
        records_class(b"".join(batches)),
        None,
        0,
        None,
        None,
        True,  # check CRCs, as the consumer does by default
        fetcher.READ_UNCOMMITTED,
    )
    return list(records)


def test_it_is_installed_for_every_consumer_of_the_process() -> None:
    assert installed()
    assert fetcher.MemoryRecords is TolerantMemoryRecords


@pytest.mark.parametrize("codec", list(CODECS))
def test_aiokafka_alone_cannot_get_past_a_header_name_that_is_not_utf8(codec: str) -> None:
    bad = batch(CODECS[codec], {3: [(RawName(BAD_NAME), b"v")]})
    with pytest.raises(UnicodeDecodeError):
        consume(memory_records.MemoryRecords, bad)


@pytest.mark.parametrize("codec", list(CODECS))
def test_every_record_comes_out_with_the_bad_name_kept_as_surrogates(codec: str) -> None:
    headers: dict[int, list[tuple[str, bytes | None]]] = {
        0: [("ok", b"1")],
        3: [("before", None), (RawName(BAD_NAME), b"v"), ("after", b"")],
        7: [(RawName(b"\xc3\x28"), None)],
    }
    good: dict[int, list[tuple[str, bytes | None]]] = {0: [("ok", b"1")], 5: [("名前", None)]}
    out = consume(
        TolerantMemoryRecords,
        batch(CODECS[codec], good, 0),
        batch(CODECS[codec], headers, 20),
        batch(CODECS[codec], good, 40),
    )
    assert len(out) == 60
    # Good batches come out exactly as aiokafka parses them (the C parser, untouched).
    assert [r.offset for r in out] == list(range(60))
    reference = consume(memory_records.MemoryRecords, batch(CODECS[codec], good))
    for first, again in ((out[:20], reference), (out[40:], reference)):
        assert [(r.timestamp, r.key, r.value, r.headers) for r in first] == [
            (r.timestamp, r.key, r.value, r.headers) for r in again
        ]
    middle = out[20:40]
    assert [r.value for r in middle] == [r.value for r in reference]
    assert middle[0].headers == (("ok", b"1"),)
    name = BAD_NAME.decode("utf-8", "surrogateescape")
    assert middle[3].headers == (("before", None), (name, b"v"), ("after", b""))
    assert middle[3].headers[1][0].encode("utf-8", "surrogateescape") == BAD_NAME
    assert middle[7].headers == ((b"\xc3\x28".decode("utf-8", "surrogateescape"), None),)
    assert all(r.headers == () for i, r in enumerate(middle) if i not in (0, 3, 7))

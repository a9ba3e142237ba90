"""The dead-letter record: original key and value bytes, unchanged, plus these headers."""

from __future__ import annotations

#: Stable reject code (e.g. ``NOT_JSON``, ``KEY_MISMATCH``), ASCII.
HEADER_ERROR_CODE = "error.code"
#: Readable explanation naming the field at fault (never its value), UTF-8.
HEADER_ERROR_MESSAGE = "error.message"
#: Where the record was read: topic name, partition and offset as decimal ASCII.
HEADER_SOURCE_TOPIC = "source.topic"
HEADER_SOURCE_PARTITION = "source.partition"
HEADER_SOURCE_OFFSET = "source.offset"
#: When it was rejected, RFC 3339 UTC.
HEADER_REJECTED_AT = "rejected.at"
#: Only when the record was too large to publish whole (it arrived compressed): what was left
#: out and its size in bytes, e.g. ``value:20971530`` or ``value:20971530,key:9,headers:2``.
HEADER_OMITTED = "omitted"

DEAD_LETTER_HEADERS = (
    HEADER_ERROR_CODE,
    HEADER_ERROR_MESSAGE,
    HEADER_SOURCE_TOPIC,
    HEADER_SOURCE_PARTITION,
    HEADER_SOURCE_OFFSET,
    HEADER_REJECTED_AT,
    HEADER_OMITTED,
)

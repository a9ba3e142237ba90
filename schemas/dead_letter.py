"""The dead-letter record: original key and value bytes, unchanged, plus these headers.

The worker writes its six headers below first, in this order, then every header the producer
had put on the rejected record, each renamed with :data:`ORIGINAL_HEADER_PREFIX`. No producer
header can therefore carry one of these names: whoever can write an input topic cannot choose
a dead letter's code or source. (Dead letters written before this format have the producer's
headers verbatim *ahead* of the worker's six; readers take the last six there.)
"""

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
#: out and its size in bytes, e.g. ``value:20971530`` or ``value:20971530,key:9,headers:2``;
#: written by the worker right after its six headers.
HEADER_OMITTED = "omitted"

#: The worker's six headers, always first and in this order.
DEAD_LETTER_HEADERS = (
    HEADER_ERROR_CODE,
    HEADER_ERROR_MESSAGE,
    HEADER_SOURCE_TOPIC,
    HEADER_SOURCE_PARTITION,
    HEADER_SOURCE_OFFSET,
    HEADER_REJECTED_AT,
)

#: The rejected record's own headers follow ours under this prefix, in their order, values
#: unchanged (``traceparent`` → ``original.traceparent``); ``dlq redrive`` removes it again.
ORIGINAL_HEADER_PREFIX = "original."

"""Hostile records from a client nobody on the project wrote: no record stops a worker.

A seeded corpus is published with kcat (librdkafka: header names that are not UTF-8, null
header values, every codec) and aiokafka (tombstones, every codec) to the event topics and
the loan-request topic, read by an ``events`` worker and a ``decisions`` worker. Every record
ends as applied, duplicate or dead-lettered, both workers keep their pid, and only
creditline's pages answer on the web port.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from schemas import dead_letter
from schemas.models import InputEvent, LoanDecision, LoanRequest
from streams.adapters.kafka.admin import ensure_topics
from streams.adapters.kafka.client import producer_options
from streams.core.decoding import RejectCode
from streams.devtools.simulation import population_events, requests, to_record
from streams.settings import Settings
from streams.topics import Topics
from tests.builders import encode, request_doc, spending_doc
from tests.conftest import cleanup, isolated
from tests.corpus import bad_corpus
from tests.e2e.conftest import WorkerProcess, free_port
from tests.support import assert_redis_matches_reference, read_topic, wait_for

SEED = 13
USERS = 20
CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
#: kcat splits its input into messages and keys at these (checked absent from the corpus).
MESSAGE_DELIMITER = b"~#~MESSAGE~#~"
KEY_DELIMITER = b"~#~KEY~#~"

RawHeaders = tuple[tuple[bytes, bytes | None], ...]
#: Header sets a record may carry: names as raw bytes, values possibly null.
BENIGN_HEADERS: list[RawHeaders] = [
    (),
    ((b"traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),),
    ((b"null-value", None),),
    (("名前".encode(), b"\xff\xfe binary"), (b"null-value", None), (b"k", b"a=b")),
    tuple((f"h{i}".encode(), None if i % 3 else b"x" * i) for i in range(40)),
]
#: Header names that are not UTF-8 (kcat takes raw bytes from argv).
HOSTILE_HEADERS: list[RawHeaders] = [
    ((b"n\xffame", b"v"),),
    ((b"ok", b"1"), (b"\xc3\x28", None)),
]


@dataclass(frozen=True)
class Sent:
    """One published record and what must become of it."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: RawHeaders
    codec: str
    #: event_id / request_id of a record that must be applied (or counted duplicate).
    ident: str | None
    #: The record's Kafka timestamp when not now (only aiokafka sends one).
    timestamp_ms: int | None = None
    #: Sent with kcat where either client can send it.
    kcat: bool = False


def _extreme_values(now: datetime, user: str) -> list[bytes]:
    """Well-formed JSON with a timestamp or amount the contract refuses."""
    stamps = [
        "0001-01-01T00:00:00+14:00",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59-14:00",
        "9999-12-31T23:59:59.999999Z",
        "1700000000",
        now.isoformat().replace("T", " "),
    ]
    values = [encode(spending_doc(user_id=user, occurred_at=s)) for s in stamps]
    values += [encode(request_doc(user_id=user, requested_at=s)) for s in stamps]
    values.append(encode(spending_doc(user_id=user, occurred_at=now.isoformat(), amount=" 7.5 ")))
    values.append(
        encode(spending_doc(user_id=user, occurred_at=now.isoformat())).replace(
            b'"25.50"', b"1e-1000000000000000000000000"
        )
    )
    values.append(
        encode(spending_doc(user_id=user, occurred_at=now.isoformat())).replace(
            b'"amount": "25.50"', b'"amount": "25.50", "amount": "2550.00"'
        )
    )
    return values


def _garbage_value(rng: random.Random, now: datetime, user: str, valid: bytes) -> bytes | None:
    """A value that no topic accepts."""
    choice = rng.randrange(7)
    if choice == 0:
        return rng.randbytes(rng.randrange(1, 300))
    if choice == 1:
        return valid[: rng.randrange(1, len(valid))]
    if choice == 2:
        return None  # a tombstone
    if choice == 3:
        return b'{"pad": "' + b"z" * 100_000 + b'"}'  # oversized, compresses well
    if choice == 4:
        return rng.choice(bad_corpus(now)).value
    return rng.choice(_extreme_values(now, user))


def _garbage_key(rng: random.Random, user: bytes) -> bytes | None:
    return rng.choice([user, user, None, b"", rng.randbytes(16), b"k" * 100_000])


def hostile_corpus(settings: Settings, now: datetime) -> tuple[list[Sent], list[InputEvent]]:
    """The seeded corpus, and the events that must end up folded."""
    rng = random.Random(SEED)
    topics = Topics.from_settings(settings)
    events = population_events(USERS, SEED, now)
    asks = list(requests(USERS, SEED, now))
    sent: list[Sent] = []
    for record in [*map(to_record, events), *asks]:
        topic = topics.topic_for(record.kind)
        model = record.model
        ident = model.request_id if isinstance(model, LoanRequest) else model.event_id
        copies = 2 if rng.random() < 0.1 else 1  # some redelivered, with another codec
        for _ in range(copies):
            if rng.random() < 0.08:  # a valid value with a name that is not UTF-8
                sent.append(
                    Sent(
                        topic,
                        record.key,
                        record.value,
                        rng.choice(HOSTILE_HEADERS),
                        rng.choice(CODECS),
                        None,
                    )
                )
            else:
                headers = rng.choice(BENIGN_HEADERS)
                sent.append(
                    Sent(topic, record.key, record.value, headers, rng.choice(CODECS), ident)
                )
        # Garbage beside a quarter of the events and three beside every request.
        garbage = 3 if isinstance(model, LoanRequest) else int(rng.random() < 0.25)
        for _ in range(garbage):
            headers = rng.choice(BENIGN_HEADERS + HOSTILE_HEADERS)
            value = _garbage_value(rng, now, record.key.decode(), record.value)
            if not value and headers in HOSTILE_HEADERS:
                value = b"{}"  # only kcat sends such names, and neither null nor empty values
            key = _garbage_key(rng, record.key)
            stamp = rng.choice([None, None, 0, 1])  # Kafka timestamps at the epoch, too
            sent.append(Sent(topic, key, value, headers, rng.choice(CODECS), None, stamp))
    # Compression bombs: 20 MiB in a batch of a few KiB, more than any topic takes whole.
    bomb = b'{"pad": "' + b"0" * (20 << 20) + b'"}'
    user = to_record(events[0]).key
    sent += [
        Sent(topics.spending, user, bomb, BENIGN_HEADERS[3], "zstd", None),
        Sent(topics.loan_requests, user, bomb, HOSTILE_HEADERS[0], "lz4", None),
        Sent(topics.assets, b"k" * (20 << 20), b"{}", BENIGN_HEADERS[1], "gzip", None),
    ]
    # Neither key nor value (the Java client and librdkafka send such tombstones).
    sent += [Sent(t, None, None, BENIGN_HEADERS[2], "none", None) for t in topics.inputs]
    sent = [replace(r, kcat=rng.random() < 0.5) for r in sent]
    rng.shuffle(sent)
    applied = {s.ident for s in sent if s.ident is not None}
    return sent, [e for e in events if e.event_id in applied]


async def publish_with_aiokafka(settings: Settings, records: Sequence[Sent], codec: str) -> None:
    """Publish with aiokafka's producer and this compression."""
    producer = AIOKafkaProducer(
        **producer_options(settings),
        compression_type=None if codec == "none" else codec,
        max_request_size=settings.max_message_bytes,
        linger_ms=5,
    )
    await producer.start()
    try:
        futures = []
        for r in records:
            headers = [(name.decode(), value) for name, value in r.headers]
            if r.key is None and r.value is None:
                # send() refuses a record with neither; a batch of its own takes it.
                batch = producer.create_batch()
                batch.append(key=None, value=None, timestamp=None, headers=headers)
                partition = min(await producer.partitions_for(r.topic))
                futures.append(await producer.send_batch(batch, r.topic, partition=partition))
            else:
                futures.append(
                    await producer.send(
                        r.topic, r.value, key=r.key, headers=headers, timestamp_ms=r.timestamp_ms
                    )
                )
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def publish_with_kcat(settings: Settings, records: Sequence[Sent]) -> None:
    """Publish records that share topic, headers and codec with one kcat (librdkafka) run."""
    first = records[0]
    args = [
        b"kcat",
        b"-P",
        b"-b",
        settings.kafka_bootstrap_servers.encode(),
        b"-t",
        first.topic.encode(),
        b"-D",
        MESSAGE_DELIMITER,
        b"-K",
        KEY_DELIMITER,
        b"-X",
        b"compression.codec=" + first.codec.encode(),
        b"-X",
        b"message.max.bytes=100000000",  # the broker limits the compressed batch
    ]
    for name, value in first.headers:
        args += [b"-H", name if value is None else name + b"=" + value]
    messages = []
    for r in records:
        assert r.value  # kcat sends neither a null value among others nor an empty one
        for part in (r.key or b"", r.value):
            assert MESSAGE_DELIMITER not in part and KEY_DELIMITER not in part
        # Without the key delimiter kcat sends a null key.
        messages.append(r.value if r.key is None else r.key + KEY_DELIMITER + r.value)
    done = subprocess.run(
        args, input=MESSAGE_DELIMITER.join(messages), capture_output=True, timeout=120
    )
    # librdkafka says why it failed on stderr: keep it in the failure, not only in the log.
    assert done.returncode == 0, (
        f"kcat exited {done.returncode}: {done.stderr.decode(errors='replace')}"
    )


async def publish(settings: Settings, corpus: Sequence[Sent]) -> tuple[Counter[str], Counter[str]]:
    """Publish the corpus, grouped by how it can be sent; records and valid records per client
    and codec."""
    by_kcat: dict[tuple[str, str, RawHeaders], list[Sent]] = defaultdict(list)
    by_aiokafka: dict[str, list[Sent]] = defaultdict(list)
    ways: Counter[str] = Counter()
    valid: Counter[str] = Counter()
    for r in corpus:
        # aiokafka sends no name that is not UTF-8 nor more than max_request_size; kcat no
        # null or empty value and no Kafka timestamp of our choosing. Otherwise either.
        hostile = any(not _utf8(name) for name, _ in r.headers)
        bomb = len(r.key or b"") + len(r.value or b"") > settings.max_message_bytes
        kcat = hostile or bomb or (r.kcat and bool(r.value) and r.timestamp_ms is None)
        if kcat:
            by_kcat[(r.topic, r.codec, r.headers)].append(r)
        else:
            by_aiokafka[r.codec].append(r)
        way = f"{'kcat' if kcat else 'aiokafka'} {r.codec}"
        ways[way] += 1
        valid[way] += r.ident is not None
    # One kcat process per topic, codec and header set, a few at a time.
    kcat_runs = [asyncio.to_thread(publish_with_kcat, settings, g) for g in by_kcat.values()]
    await asyncio.gather(
        *kcat_runs, *(publish_with_aiokafka(settings, g, c) for c, g in by_aiokafka.items())
    )
    return ways, valid


def _utf8(name: bytes) -> bool:
    try:
        name.decode()
    except UnicodeDecodeError:
        return False
    return True


def outcomes(worker: WorkerProcess, topic: str) -> dict[str, float]:
    """The worker's record counters for one topic."""
    return {
        name: worker.counter(f"creditline_records_{name}_total", topic=topic)
        for name in ("consumed", "applied", "duplicate", "dead_lettered")
    }


@pytest.fixture
def hostile_settings(base_settings: Settings) -> Settings:
    return isolated(base_settings, partitions=4, web_port=free_port(), log_level="info")


async def test_no_hostile_record_stops_a_worker(hostile_settings: Settings, tmp_path: Path) -> None:
    settings = hostile_settings
    topics = Topics.from_settings(settings)
    await ensure_topics(settings)
    events_worker = WorkerProcess(
        settings.model_copy(update={"worker_role": "events"}), tmp_path / "events.log"
    )
    decisions_worker = WorkerProcess(
        settings.model_copy(update={"worker_role": "decisions", "web_port": free_port()}),
        tmp_path / "decisions.log",
    )
    try:
        events_worker.start()
        decisions_worker.start()
        assert events_worker.process is not None and decisions_worker.process is not None
        pids = (events_worker.process.pid, decisions_worker.process.pid)
        now = datetime.now(UTC)
        corpus, applied_events = hostile_corpus(settings, now)
        bomb = max((r.value or b"" for r in corpus), key=len)
        started = time.monotonic()
        ways, valid = await publish(settings, corpus)
        took = time.monotonic() - started
        print(f"published {len(corpus)} records in {took:.1f} s: {dict(sorted(ways.items()))}")
        print(f"valid ones: {dict(sorted(valid.items()))}")
        # Both clients sent valid records in every codec.
        assert len(+valid) == 2 * len(CODECS)

        expected: dict[str, Counter[str]] = defaultdict(Counter)
        idents: dict[str, set[str]] = defaultdict(set)
        for r in corpus:
            expected[r.topic]["consumed"] += 1
            if r.ident is None:
                expected[r.topic]["dead_lettered"] += 1
            elif r.ident in idents[r.topic]:
                expected[r.topic]["duplicate"] += 1
            else:
                idents[r.topic].add(r.ident)
                expected[r.topic]["applied"] += 1
        reader = {t: events_worker for t in topics.events} | {
            topics.loan_requests: decisions_worker
        }

        async def all_consumed() -> bool:
            for worker in (events_worker, decisions_worker):
                assert worker.process is not None and worker.process.poll() is None, worker.log()
            return all(
                outcomes(reader[t], t)["consumed"] == expected[t]["consumed"] for t in expected
            )

        await wait_for(all_consumed, timeout=90, message="every record consumed")

        async def all_accounted() -> bool:
            return all(
                outcomes(reader[t], t)
                == {k: float(v) for k, v in expected[t].items()}
                | {
                    k: 0.0
                    for k in ("applied", "duplicate", "dead_lettered")
                    if k not in expected[t]
                }
                for t in expected
            )

        await wait_for(all_accounted, timeout=30, message="every record accounted for")
        for topic in expected:
            print(topic, outcomes(reader[topic], topic))

        # Every valid event folded, exactly; every valid request answered (copies republished).
        await assert_redis_matches_reference(settings, applied_events)
        wanted = sum(1 for r in corpus if r.topic == topics.loan_requests and r.ident)
        published = await read_topic(settings, topics.loan_decisions, expect=wanted, timeout=30)
        decided = Counter(LoanDecision.model_validate_json(r.value).request_id for r in published)
        assert sum(decided.values()) == wanted
        assert set(decided) == idents[topics.loan_requests]

        # Every other record dead-lettered with a contract code and its headers, names that
        # were not UTF-8 written with \xNN escapes, null values empty.
        rejected = sum(e["dead_lettered"] for e in expected.values())
        letters = await read_topic(settings, topics.dead_letter, expect=rejected, timeout=30)
        assert len(letters) == rejected
        codes = Counter(dict(letter.headers)[dead_letter.HEADER_ERROR_CODE] for letter in letters)
        print("dead letters by code:", dict(sorted(codes.items())))
        assert set(codes) <= {c.value.encode() for c in RejectCode}
        header_rejects = Counter(
            dict(letter.headers)[dead_letter.HEADER_SOURCE_TOPIC]
            for letter in letters
            if dict(letter.headers)[dead_letter.HEADER_ERROR_CODE] == b"INVALID_HEADER"
        )
        assert header_rejects[topics.loan_requests.encode()] > 0
        assert header_rejects[topics.spending.encode()] > 0
        writable = {
            tuple((name.decode(errors="backslashreplace"), value or b"") for name, value in headers)
            for headers in BENIGN_HEADERS + HOSTILE_HEADERS
        }
        ours = {*dead_letter.DEAD_LETTER_HEADERS, dead_letter.HEADER_OMITTED}
        prefix = dead_letter.ORIGINAL_HEADER_PREFIX
        for letter in letters:
            theirs = tuple((k, v) for k, v in letter.headers if k not in ours)
            assert all(k.startswith(prefix) for k, _ in theirs)  # never passing for ours
            assert tuple((k.removeprefix(prefix), v) for k, v in theirs) in writable
        # The bombs' dead letters leave out what no topic takes whole, and say so.
        omitted = sorted(
            dict(letter.headers)[dead_letter.HEADER_OMITTED].decode()
            for letter in letters
            if dead_letter.HEADER_OMITTED in dict(letter.headers)
        )
        assert omitted == sorted([f"value:{len(bomb)}"] * 2 + [f"value:2,key:{20 << 20},headers:1"])

        # Neither worker stopped or restarted.
        assert (events_worker.process.pid, decisions_worker.process.pid) == pids
        assert events_worker.process.poll() is None and decisions_worker.process.poll() is None
        for worker in (events_worker, decisions_worker):
            assert "Traceback" not in worker.log()
    finally:
        events_worker.stop()
        decisions_worker.stop()
        await cleanup(settings)


FAUST_PAGES = ("/", "/router/", "/router/x/", "/table/", "/graph/", "/stats/", "/performance/")


async def test_the_web_port_serves_only_creditline_pages(worker: WorkerProcess) -> None:
    base = f"http://127.0.0.1:{worker.settings.web_port}"
    for path in ("/metrics", "/healthz"):
        with urllib.request.urlopen(base + path, timeout=5) as response:
            assert response.status == 200
    for path in FAUST_PAGES:
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(base + path, timeout=5)
        assert info.value.code == 404, path
        assert b"Traceback" not in info.value.read()

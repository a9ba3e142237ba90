"""The dead-letter tools against hostile producers and big topics: whoever can write an input
topic cannot choose a dead letter's code or source, `dlq redrive` writes only to input topics,
producer data is printed inertly, and every read is a bounded range.

The attack this reproduces: a record on an input topic carrying forged `error.code` and
`source.topic` headers (pointing at the policy topic) and a permissive policy as its value;
a routine `dlq redrive --code …` used to publish it to the policy topic, where it went live.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import unicodedata
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import pytest
import yaml
from aiokafka import AIOKafkaProducer

from schemas import dead_letter
from schemas.models import Outcome
from streams.adapters.kafka.admin import ensure_topics
from streams.adapters.kafka.client import producer_options
from streams.adapters.kafka.dead_letters import HEADER_REDRIVEN_FROM, read_dead_letters
from streams.core.inert import inert
from streams.core.policy import load_default_policy
from streams.settings import Settings
from streams.topics import Topics
from tests.builders import loan_request, repayment
from tests.conftest import cleanup, isolated
from tests.e2e.conftest import WorkerProcess, creditline, settings_env
from tests.support import decisions_for, headers_of, publish, read_topic, wait_applied, wait_for

Headers = list[tuple[str, bytes]]


async def send(settings: Settings, topic: str, key: bytes, value: bytes, headers: Headers) -> str:
    """Publish one record with headers; its ``partition:offset``."""
    producer = AIOKafkaProducer(**producer_options(settings))
    await producer.start()
    try:
        meta = await producer.send_and_wait(topic, value, key=key, headers=headers)
        return f"{meta.partition}:{meta.offset}"
    finally:
        await producer.stop()


def worker_headers(code: str, topic: str) -> Headers:
    """The six headers a worker writes, with these values."""
    values = {
        dead_letter.HEADER_ERROR_CODE: code,
        dead_letter.HEADER_ERROR_MESSAGE: "a message",
        dead_letter.HEADER_SOURCE_TOPIC: topic,
        dead_letter.HEADER_SOURCE_PARTITION: "0",
        dead_letter.HEADER_SOURCE_OFFSET: "0",
        dead_letter.HEADER_REJECTED_AT: datetime.now(UTC).isoformat(),
    }
    return [(name, values[name].encode()) for name in dead_letter.DEAD_LETTER_HEADERS]


def cli_json(settings: Settings, *args: str) -> Any:
    result = creditline(settings, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


async def test_forged_dead_letter_provenance_cannot_redirect_a_redrive(
    worker: WorkerProcess,
) -> None:
    settings = worker.settings
    topics = Topics.from_settings(settings)
    now = datetime.now(UTC)
    default = load_default_policy().version

    # A user the default policy declines (score 500).
    history = [
        repayment(
            event_id=f"r{i}",
            user_id="u-500",
            outstanding_balance="0.00",
            occurred_at=(now - timedelta(days=30 * i + 1)).isoformat(),
        )
        for i in range(4)
    ]
    history.append(
        repayment(
            event_id="r-late",
            user_id="u-500",
            days_past_due=10,
            outstanding_balance="0.00",
            occurred_at=(now - timedelta(days=150)).isoformat(),
        )
    )
    await publish(settings, history)
    await wait_applied(settings, "u-500", len(history))
    ask = loan_request(user_id="u-500", requested_at=now.isoformat(), amount="1000.00")
    before = (await decisions_for(settings, [ask.model_copy(update={"request_id": "q-1"})]))["q-1"]
    assert before.outcome is Outcome.DECLINED
    assert before.score == 500

    # The attacker writes the spending topic: a permissive policy, dressed as a dead letter
    # of the policy topic with the code an operator routinely re-drives.
    doc = yaml.safe_load(resources.files("streams.policies").joinpath("default.yaml").read_text())
    doc["version"] = "forged-1"
    doc["status"]["thresholds"] = {"close_below": 350, "reopen_at": 360}
    envelope = {"policy": doc, "applied_at": now.isoformat(), "applied_by": "risk-team"}
    forged: Headers = [
        *worker_headers("NOT_JSON", topics.policy),
        ("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    ]
    await send(settings, topics.spending, b"forged-1", json.dumps(envelope).encode(), forged)
    await send(settings, topics.spending, b"u-500", b"garbage", [])  # a real NOT_JSON

    letters = await read_topic(settings, topics.dead_letter, expect=2, timeout=60)
    [attack] = [x for x in letters if x.key == b"forged-1"]
    names = [name for name, _ in attack.headers]
    assert names[:6] == list(dead_letter.DEAD_LETTER_HEADERS)
    assert names[6:] == [f"original.{name}" for name, _ in forged]
    real = headers_of(attack)
    assert real[dead_letter.HEADER_ERROR_CODE] == "MISSING_FIELD"
    assert real[dead_letter.HEADER_SOURCE_TOPIC] == topics.spending
    attack_id = f"{attack.partition}:{attack.offset}"

    # Letters no worker of this version wrote, put on the topic directly: one in the layout
    # of older workers (forged headers first, the worker's last), one whose worker headers
    # name the policy topic, one with forged headers only.
    legacy_head = worker_headers("NOT_JSON", topics.policy)
    legacy_id = await send(
        settings,
        topics.dead_letter,
        b"u-500",
        b"legacy garbage",
        [*legacy_head, *worker_headers("NOT_UTF8", topics.spending)],
    )
    elsewhere_id = await send(
        settings, topics.dead_letter, b"forged-2", b"{}", worker_headers("NOT_JSON", topics.policy)
    )
    unknown_id = await send(settings, topics.dead_letter, b"forged-3", b"{}", forged[:3])

    listed = cli_json(settings, "dlq", "list")
    rows = {r["id"]: r for r in listed["records"]}
    assert listed["total"] == 5
    assert rows[attack_id]["code"] == "MISSING_FIELD"
    assert rows[attack_id]["source"].startswith(f"{topics.spending}[")
    assert rows[legacy_id]["code"] == "NOT_UTF8"
    assert rows[legacy_id]["source"].startswith(f"{topics.spending}[")
    assert rows[unknown_id]["code"] == ""
    assert listed["by_code"] == {"MISSING_FIELD": 1, "NOT_JSON": 2, "NOT_UTF8": 1, "": 1}

    # The routine re-drive of the forged code: the real NOT_JSON goes back to spending, the
    # letter naming the policy topic is skipped and reported, nothing reaches the policy.
    redriven = cli_json(settings, "dlq", "redrive", "--code", "NOT_JSON")
    assert redriven == {
        "redriven": 1,
        "topics": {topics.spending: 1},
        "skipped": 1,
        "skipped_ids": [elsewhere_id],
        "read": 5,
        "in_window": 5,
        "not_read": 0,
    }
    text = creditline(settings, "dlq", "redrive", "--code", "MISSING_FIELD")
    assert text.returncode == 0, text.stderr
    assert f"re-published 1 records: {topics.spending} 1" in text.stdout

    async def seven_letters() -> bool:
        return len(await read_topic(settings, topics.dead_letter, expect=7, timeout=1)) == 7

    await wait_for(seven_letters, message="the re-driven records dead-lettered again")
    everything = cli_json(settings, "dlq", "redrive", "--all")
    assert everything["topics"] == {topics.spending: 5}
    assert sorted(everything["skipped_ids"]) == sorted([elsewhere_id, unknown_id])

    assert await read_topic(settings, topics.policy, expect=1, timeout=3) == []
    # Re-driven records carry exactly their producer's headers, plus where they came from
    # (a record re-driven twice also kept the first `redriven.from` as a producer header).
    spent = await read_topic(settings, topics.spending, expect=9, timeout=30)
    redriven_records = [r for r in spent if HEADER_REDRIVEN_FROM in headers_of(r)]
    assert len(redriven_records) == 7
    for record in redriven_records:
        headers = [(k, bytes(v)) for k, v in record.headers]
        assert headers[-1][0] == HEADER_REDRIVEN_FROM
        producer_headers = [h for h in headers if h[0] != HEADER_REDRIVEN_FROM]
        if record.key == b"forged-1":
            assert producer_headers == forged
        elif record.value == b"legacy garbage":
            assert producer_headers == legacy_head
        else:
            assert producer_headers == []

    after = (await decisions_for(settings, [ask.model_copy(update={"request_id": "q-2"})]))["q-2"]
    assert after.outcome is Outcome.DECLINED
    assert after.policy_version == default
    assert worker.counter("creditline_policy_info", version="forged-1") == 0
    assert worker.counter("creditline_policy_info", version=default) == 1


def wide(settings: Settings, *args: str) -> str:
    """A ``creditline`` command's output, 300 columns wide (table cells are not wrapped)."""
    result = subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        capture_output=True,
        text=True,
        env={**settings_env(settings), "COLUMNS": "300"},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def assert_inert(out: str) -> None:
    """No character a terminal would act on (newlines between lines aside)."""
    unsafe = [c for c in out.replace("\n", "") if unicodedata.category(c) in INERT_UNSAFE]
    assert not unsafe, unsafe


INERT_UNSAFE = {"Cc", "Cf", "Zl", "Zp", "Cs"}


async def test_dlq_prints_producer_data_inertly(worker: WorkerProcess) -> None:
    settings = worker.settings
    topics = Topics.from_settings(settings)
    value = "\x1b[2J[bold red]x[/]\r\x9b31m\u202eevil\x07"
    header = "[bold]hdr[/bold]\x1b[5m"
    await send(
        settings, topics.spending, b"\x1b]0;pwned\x07u-1", value.encode(), [(header, b"[red]v\x07")]
    )
    [letter] = await read_topic(settings, topics.dead_letter, expect=1, timeout=60)
    letter_id = f"{letter.partition}:{letter.offset}"

    shown = wide(settings, "dlq", "show", letter_id)
    assert_inert(shown)
    assert "\\x1b[2J[bold red]x[/]\\r\\x9b31m\\u202eevil\\x07" in shown  # escaped, not run
    assert f"original.{inert(header)}" in shown  # the header name's markup is text
    assert "[red]v\\x07" in shown
    assert "\\x1b]0;pwned\\x07u-1" in shown
    as_json = wide(settings, "dlq", "show", letter_id, "--json")
    assert_inert(as_json)
    doc = json.loads(as_json)
    assert doc["value"] == value  # the data itself, faithfully, as JSON escapes
    assert doc["headers"][f"original.{header}"] == "[red]v\x07"
    for listing in (wide(settings, "dlq", "list"), wide(settings, "dlq", "list", "--json")):
        assert_inert(listing)
        assert "NOT_JSON" in listing


@pytest.fixture
async def dlq_settings(base_settings: Settings) -> AsyncIterator[Settings]:
    """Isolated topics (12 partitions) and no worker: the dead letters are put there directly."""
    settings = isolated(base_settings, partitions=12)
    await ensure_topics(settings)
    try:
        yield settings
    finally:
        await cleanup(settings)


async def test_dlq_reads_are_bounded_ranges(dlq_settings: Settings) -> None:
    settings = dlq_settings
    topics = Topics.from_settings(settings)
    now_ms = int(time.time() * 1000)
    old, new = 10_000, 2_000
    producer = AIOKafkaProducer(**producer_options(settings), linger_ms=20)
    await producer.start()
    try:
        sent = []
        for i in range(old + new):
            age, at = ("old", now_ms - 3 * 3600_000 + i) if i < old else ("new", now_ms + i)
            headers = worker_headers("NOT_JSON" if i % 2 else "KEY_MISMATCH", topics.spending)
            headers[1] = (dead_letter.HEADER_ERROR_MESSAGE, f"{age} {i}".encode())
            sent.append(
                await producer.send(
                    topics.dead_letter,
                    b"x" * 1024,
                    key=f"u-{i}".encode(),
                    headers=headers,
                    timestamp_ms=at,
                )
            )
        first_old = await sent[0]
        for future in sent[1:]:
            await future
    finally:
        await producer.stop()

    # In-process figures: the default read against reading the whole topic.
    started = time.perf_counter()
    page = await read_dead_letters(settings, values=False)
    bounded = time.perf_counter() - started
    started = time.perf_counter()
    whole = await read_dead_letters(settings, limit=old + new, values=False)
    everything = time.perf_counter() - started
    assert (page.read, page.in_window, page.not_read) == (100, old + new, old + new - 100)
    assert [x.header(dead_letter.HEADER_ERROR_MESSAGE) for x in page.letters] == [
        f"new {i}" for i in range(old + new - 100, old + new)
    ]
    assert whole.read == old + new
    print(f"newest 100 of {old + new}: {bounded:.3f} s; whole topic: {everything:.3f} s")

    listed = cli_json(settings, "dlq", "list")
    assert (listed["read"], listed["in_window"], listed["not_read"]) == (100, 12_000, 11_900)
    assert listed["total"] == len(listed["records"]) == 100
    assert listed["limit"] == 100 and listed["since"] is None
    assert {r["message"].split()[0] for r in listed["records"]} == {"new"}
    recent = cli_json(settings, "dlq", "list", "--since", "1h", "--limit", "5000")
    assert (recent["read"], recent["in_window"], recent["not_read"]) == (new, new, 0)
    four_hours_ago = datetime.fromtimestamp(now_ms / 1000 - 4 * 3600, UTC).isoformat()
    coded = cli_json(
        settings, "dlq", "list", "--since", four_hours_ago, "--limit", "20000", "--code", "NOT_JSON"
    )
    assert (coded["read"], coded["total"], coded["by_code"]) == (12_000, 6_000, {"NOT_JSON": 6_000})
    text = creditline(settings, "dlq", "list", "--since", "1h", "--limit", "10")
    assert "1990 older dead letters since" in text.stderr

    # `show` seeks to the one record, however old.
    started = time.perf_counter()
    shown = cli_json(settings, "dlq", "show", f"{first_old.partition}:{first_old.offset}")
    show_seconds = time.perf_counter() - started
    assert shown["headers"][dead_letter.HEADER_ERROR_MESSAGE] == "old 0"
    print(f"dlq show of the oldest record: {show_seconds:.2f} s (process included)")
    assert creditline(settings, "dlq", "show", f"{first_old.partition}:99999999").returncode == 1
    assert creditline(settings, "dlq", "show", "nonsense").returncode == 1
    assert creditline(settings, "dlq", "list", "--since", "yesterday").returncode == 1

    # `redrive` takes the same bounded selection: NOT_JSON among the newest 10 since an hour.
    redriven = cli_json(
        settings, "dlq", "redrive", "--code", "NOT_JSON", "--since", "1h", "--limit", "10"
    )
    assert redriven == {
        "redriven": 5,
        "topics": {topics.spending: 5},
        "skipped": 0,
        "skipped_ids": [],
        "read": 10,
        "in_window": new,
        "not_read": new - 10,
    }
    assert len(await read_topic(settings, topics.spending, expect=5, timeout=10)) == 5

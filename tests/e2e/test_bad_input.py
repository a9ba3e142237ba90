"""Bad input through the worker process: every malformed record dead-lettered with its code and
origin, no good record lost, the worker never restarts; a storm of them is reported loudly."""

from __future__ import annotations

import re
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from schemas import dead_letter
from streams.devtools.simulation import population_events, to_record
from streams.settings import Settings
from streams.topics import Topics
from tests.conftest import isolated
from tests.corpus import bad_corpus
from tests.e2e.conftest import WorkerProcess, free_port, running_worker
from tests.support import (
    assert_redis_matches_reference,
    headers_of,
    produce,
    read_topic,
    wait_for,
)


async def test_every_malformed_record_is_dead_lettered_and_good_ones_all_apply(
    worker: WorkerProcess,
) -> None:
    settings = worker.settings
    topics = Topics.from_settings(settings)
    assert worker.process is not None
    pid = worker.process.pid
    events = population_events(60, seed=31, now=datetime.now(UTC))
    good = [to_record(e) for e in events]
    corpus = bad_corpus(datetime.now(UTC))
    stream: list[tuple[str, bytes | None, bytes | None]] = [
        (topics.topic_for(r.kind), r.key, r.value) for r in good
    ]
    for i, case in enumerate(corpus):  # spread through the good stream
        stream.insert((i * 29) % len(stream), (topics.topic_for(case.kind), case.key, case.value))
    await produce(settings, stream)

    await assert_redis_matches_reference(settings, events)
    letters = await read_topic(settings, topics.dead_letter, expect=len(corpus), timeout=60)
    assert len(letters) == len(corpus)
    expected = Counter(
        (topics.topic_for(c.kind), c.key or b"", c.value or b"", c.code.value) for c in corpus
    )
    actual = Counter(
        (
            headers_of(letter)[dead_letter.HEADER_SOURCE_TOPIC],
            letter.key or b"",
            letter.value or b"",
            headers_of(letter)[dead_letter.HEADER_ERROR_CODE],
        )
        for letter in letters
    )
    assert actual == expected
    for letter in letters:
        h = headers_of(letter)
        assert int(h[dead_letter.HEADER_SOURCE_PARTITION]) >= 0
        assert int(h[dead_letter.HEADER_SOURCE_OFFSET]) >= 0
        assert h[dead_letter.HEADER_ERROR_MESSAGE]
    # The worker handled all of it without restarting.
    assert worker.process.poll() is None
    assert worker.process.pid == pid
    assert "Traceback" not in worker.log()
    assert worker.counter("creditline_dead_letter_storm") == 0


async def test_a_dead_letter_storm_is_reported_loudly(
    base_settings: Settings, tmp_path: Path
) -> None:
    settings = isolated(
        base_settings,
        partitions=4,
        web_port=free_port(),
        storm_window_records=200,
        storm_min_records=50,
        storm_window_seconds=5,
    )
    topics = Topics.from_settings(settings)
    async with running_worker(settings, tmp_path / "worker.log") as worker:
        garbage = [(topics.spending, b"u-1", b"<html>502 Bad Gateway</html>")] * 2000
        await produce(settings, garbage)

        async def storming() -> bool:
            return worker.counter("creditline_dead_letter_storm", agent="fold_events") == 1

        await wait_for(storming, message="the storm gauge")
        started = time.monotonic()
        assert worker.counter("creditline_dead_letter_storms_total", agent="fold_events") == 1
        assert "DEAD-LETTER STORM in fold_events" in worker.log()
        assert "NOT_JSON" in worker.log()

        # Nothing follows: the storm ends by time alone (5 s window, 1 s ticks).
        async def calm() -> bool:
            return worker.counter("creditline_dead_letter_storm", agent="fold_events") == 0

        await wait_for(calm, timeout=30, message="the storm to end on a quiet topic")
        quiet_seconds = time.monotonic() - started
        assert worker.counter("creditline_dead_letter_storms_total", agent="fold_events") == 1
        assert worker.counter("creditline_records_dead_lettered_total", reason="NOT_JSON") == 2000

        # 2,000 rejections, a handful of lines: one at once, then a summary per 10 s.
        summary = re.compile(r"fold_events dead-lettered ([\d,]+) records?\b")

        def reported() -> int:
            return sum(int(n.replace(",", "")) for n in summary.findall(worker.log()))

        async def all_reported() -> bool:
            return reported() == 2000

        await wait_for(all_reported, timeout=30, message="summaries of all 2,000 rejections")
        lines = [x for x in worker.log().splitlines() if re.search("dead-letter|NOT_JSON", x, re.I)]
        print(f"storm over {quiet_seconds:.1f} s after it was seen; {len(lines)} log lines:")
        print("\n".join(lines))
        assert len(lines) <= 5, lines  # 2 summaries, the storm and its end
        assert not any("u-1" in x or "Bad Gateway" in x for x in lines)

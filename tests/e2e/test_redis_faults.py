"""Redis faults with the worker process running: an outage mid-stream, and data loss + replay."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from schemas.models import DisplayedStatus, LoanRequest, Outcome
from streams.devtools.simulation import population_events, to_record
from streams.settings import Settings
from streams.topics import Topics
from tests.conftest import cleanup, isolated
from tests.e2e.conftest import PrivateRedis, WorkerProcess, free_port, running_worker, settings_env
from tests.support import (
    assert_redis_matches_reference,
    committed_lag,
    decisions_for,
    produce,
    redis_states,
    wait_for,
)


async def test_redis_outage_mid_stream_loses_nothing_and_never_approves_blindly(
    base_settings: Settings, private_redis: PrivateRedis, tmp_path: Path
) -> None:
    settings = isolated(
        base_settings,
        partitions=12,
        web_port=free_port(),
        redis_url=private_redis.url,
        score_unavailable_wait_seconds=2.0,
    )
    topics = Topics.from_settings(settings)
    events = population_events(200, seed=41, now=datetime.now(UTC))
    records = [(topics.topic_for(r.kind), r.key, r.value) for r in map(to_record, events)]
    half = len(records) // 2
    # Events and decisions in separate workers (the recommended deployment): a request is then
    # answered within the bounded wait even while the event fold is stuck on Redis. (With one
    # `all` worker, requests queue behind the event buffer until Redis returns.)
    events_only = settings.model_copy(update={"worker_role": "events"})
    decider = WorkerProcess(
        settings.model_copy(update={"worker_role": "decisions", "web_port": free_port()}),
        tmp_path / "decisions.log",
    )
    try:
        async with running_worker(events_only, tmp_path / "worker.log") as worker:
            decider.start()
            assert worker.process is not None
            pid = worker.process.pid
            await produce(settings, records[:half])
            private_redis.stop()  # Redis goes away mid-stream...
            outage_started = time.monotonic()
            await produce(settings, records[half:])
            # ...a loan request during the outage waits a bounded time, then goes to review.
            request = LoanRequest(
                request_id="q-outage",
                user_id="user-000001",
                requested_at=datetime.now(UTC),
                amount=Decimal("100.00"),
                term_months=6,
                displayed_status=DisplayedStatus.OPEN,
            )
            decision = (await decisions_for(settings, [request]))["q-outage"]
            assert decision.outcome is Outcome.REVIEW
            assert [r.code for r in decision.reasons] == ["SCORE_UNAVAILABLE"]
            # Timed by the worker's clock (same machine): from the request being made to its
            # decision, without the time this test takes to find the decision in the topic.
            assert decision.decided_at - request.requested_at < timedelta(seconds=15)
            # The unapplied events are not committed, and the worker does not crash (same process).
            await asyncio.sleep(max(0.0, 10.5 - (time.monotonic() - outage_started)))
            assert await committed_lag(settings, topics.events) > 0
            assert worker.process.poll() is None
            assert worker.process.pid == pid
            # Kill it now: had it committed past unapplied events, they would be lost for good.
            worker.kill()
            private_redis.start()  # back, with its data
            worker.start()
            await assert_redis_matches_reference(settings, events, timeout=90)

            async def committed() -> bool:
                return await committed_lag(settings, topics.events) == 0

            await wait_for(committed, timeout=30, message="offsets committed after recovery")
            log_text = worker.log()
            # Whichever Redis step the outage hit (load, save, clear_outbox), it was retried.
            assert "failed (ConnectionError); retry" in log_text, log_text[-3000:]
    finally:
        if decider.process is not None:
            decider.stop()


def run_replay(settings: Settings) -> dict[str, Any]:
    """`creditline replay --json` as a process; its summary."""
    result = subprocess.run(
        [sys.executable, "-m", "streams.cli", "replay", "--json"],
        capture_output=True,
        text=True,
        env=settings_env(settings),
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


async def test_replay_rebuilds_redis_after_data_loss(worker: WorkerProcess, tmp_path: Path) -> None:
    settings = worker.settings
    topics = Topics.from_settings(settings)
    events = population_events(120, seed=43, now=datetime.now(UTC) - timedelta(minutes=1))
    await produce(
        settings, [(topics.topic_for(r.kind), r.key, r.value) for r in map(to_record, events)]
    )
    await assert_redis_matches_reference(settings, events)
    worker.stop()
    # Redis loses everything of ours.
    await cleanup(settings, topics=False)
    assert await redis_states(settings) == {}

    summary = run_replay(settings)
    assert summary["records"] == len(events)
    assert summary["applied"] == len(events)
    await assert_redis_matches_reference(settings, events, timeout=5)
    # Replaying again finds everything present: idempotent.
    assert run_replay(settings)["duplicate"] == len(events)
    worker.start()  # the fixture stops it again


async def test_a_worker_started_before_its_redis_waits_for_it(
    base_settings: Settings, private_redis: PrivateRedis, tmp_path: Path
) -> None:
    settings = isolated(base_settings, web_port=free_port(), redis_url=private_redis.url)
    topics = Topics.from_settings(settings)
    private_redis.stop()
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    worker.log_path.touch()  # read below before the worker's thread opens it
    starting = asyncio.ensure_future(asyncio.to_thread(worker.start))
    try:
        # Redis stays away for several retries: the worker waits for it, it does not exit.
        # Waiting for the second retry's line, not a fixed time: on a loaded machine the
        # worker's start-up alone can outlast a few seconds (a CI run restarted Redis before
        # the worker had tried twice).
        retried = "store layout failed (ConnectionError); retry 2"
        deadline = time.monotonic() + 60
        while retried not in worker.log() and time.monotonic() < deadline:
            assert worker.process is None or worker.process.poll() is None, worker.log()[-3000:]
            await asyncio.sleep(0.2)
        assert retried in worker.log(), worker.log()[-3000:]
        await asyncio.sleep(1)  # and a few more retries after it
        assert not starting.done()
        assert worker.process is not None and worker.process.poll() is None
        private_redis.start()
        await starting
        events = population_events(20, seed=43, now=datetime.now(UTC))
        await produce(
            settings, [(topics.topic_for(r.kind), r.key, r.value) for r in map(to_record, events)]
        )
        await assert_redis_matches_reference(settings, events)
    finally:
        await asyncio.gather(starting, return_exceptions=True)
        if worker.process is not None:
            worker.stop()

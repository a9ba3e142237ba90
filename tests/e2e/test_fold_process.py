"""``creditline worker`` (role all): the fold in a process of its own, one worker outside."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from streams.adapters.kafka.admin import ensure_topics
from streams.devtools.simulation import population_events, requests, to_record
from streams.runtime.fold_process import FOLD_PROCESS_NAME
from streams.settings import Settings
from streams.topics import Topics
from tests.conftest import cleanup
from tests.e2e.conftest import WorkerProcess, running_worker
from tests.support import (
    assert_redis_matches_reference,
    group_members,
    produce,
    read_topic,
    wait_for,
)

USERS = 12
SEED = 23


def health(worker: WorkerProcess) -> tuple[int, dict[str, Any]]:
    return worker.health()


def fold_pid(worker: WorkerProcess) -> int:
    status, body = health(worker)
    assert status == 200, body
    assert body["fold"]["running"] is True
    pid = int(body["fold"]["process"])
    assert worker.process is not None and pid != worker.process.pid
    return pid


def proc_stat(pid: int) -> list[str]:
    """Fields of /proc/<pid>/stat after the command name (state first); [] once reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return []


def dead(pid: int) -> bool:
    """Gone or a zombie (the container's init may never reap an orphan)."""
    stat = proc_stat(pid)
    return not stat or stat[0] == "Z"


def _await_fold(process: subprocess.Popen[bytes], timeout: float = 90.0) -> int:
    """The fold process of a starting worker, as soon as it has its name (the worker's
    start-up checks may run other short-lived children first)."""
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the worker exited before forking its fold"
        for pid in children.read_text().split():
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == FOLD_PROCESS_NAME:
                    return int(pid)
            except FileNotFoundError:
                continue
        time.sleep(0.002)
    raise AssertionError(f"no fold forked in {timeout:.0f} s")


def fold_page(worker: WorkerProcess) -> str:
    """The fold's own /metrics page (its loopback address is on the worker's /healthz)."""
    return worker.metrics_text(worker.fold_pages()[0])


async def test_the_fold_is_a_process_of_its_own_behind_one_worker(
    worker_settings: Settings, tmp_path: Path
) -> None:
    settings = worker_settings.model_copy(update={"worker_fold_nice": 3, "worker_fold_idle": True})
    async with running_worker(settings, tmp_path / "worker.log") as worker:
        await _one_worker_two_processes(worker)


async def _one_worker_two_processes(worker: WorkerProcess) -> None:
    settings = worker.settings
    topics = Topics.from_settings(settings)
    pid = fold_pid(worker)
    assert worker.process is not None
    assert int(proc_stat(pid)[1]) == worker.process.pid  # the worker's own child
    # The fold adds CREDITLINE_WORKER_FOLD_NICE to the worker's niceness.
    own_nice = int(proc_stat(worker.process.pid)[16])
    assert int(proc_stat(pid)[16]) == own_nice + 3
    # And it runs on idle time (CREDITLINE_WORKER_FOLD_IDLE); the worker does not.
    assert os.sched_getscheduler(pid) == os.SCHED_IDLE
    assert os.sched_getscheduler(worker.process.pid) == os.SCHED_OTHER

    now = datetime.now(UTC)
    events = population_events(USERS, SEED, now)
    await produce(
        settings, [(topics.topic_for(r.kind), r.key, r.value) for r in map(to_record, events)]
    )
    await assert_redis_matches_reference(settings, events)
    asks = list(requests(USERS, SEED, now))
    await produce(settings, [(topics.loan_requests, r.key, r.value) for r in asks])
    assert len(await read_topic(settings, topics.loan_decisions, expect=USERS)) == USERS

    # One /metrics for both: the fold's counts and the worker's own, each once.
    async def counted() -> bool:
        applied = sum(
            worker.counter("creditline_records_applied_total", topic=t) for t in topics.events
        )
        return applied == len(events)

    await wait_for(counted, message="every event counted on the worker's /metrics")
    assert worker.counter("creditline_decisions_total") == USERS
    fold_only = fold_page(worker)
    assert "creditline_decisions_total{" not in fold_only  # the fold answers none
    assert f'creditline_records_applied_total{{topic="{topics.repayments}"}}' in fold_only


async def test_several_folds_share_the_partitions_behind_one_worker(
    worker_settings: Settings, tmp_path: Path
) -> None:
    settings = worker_settings.model_copy(update={"worker_folds": 2})
    topics = Topics.from_settings(settings)
    log = tmp_path / "worker.log"
    async with running_worker(settings, log) as worker:
        assert worker.process is not None
        status, body = health(worker)
        assert status == 200, body
        assert body["fold"] == body["folds"][0]  # what read the one fold still reads it
        pids = [int(fold["process"]) for fold in body["folds"]]
        assert len(set(pids)) == 2 and all(fold["running"] for fold in body["folds"])
        assert all(int(proc_stat(pid)[1]) == worker.process.pid for pid in pids)
        # Not idle-scheduled when told not to be (the tests' settings).
        assert all(os.sched_getscheduler(pid) == os.SCHED_OTHER for pid in pids)

        async def both_members() -> bool:
            return await group_members(settings) == ("Stable", 2)

        await wait_for(both_members, message="both folds in the events group")
        now = datetime.now(UTC)
        events = population_events(MANY_USERS, SEED, now)
        await produce(
            settings, [(topics.topic_for(r.kind), r.key, r.value) for r in map(to_record, events)]
        )
        await assert_redis_matches_reference(settings, events)

        # Each fold folded its share; the worker's /metrics counts every event once.
        async def counted() -> bool:
            applied = sum(
                worker.counter("creditline_records_applied_total", topic=t) for t in topics.events
            )
            return applied == len(events)

        await wait_for(counted, message="every event counted on the worker's /metrics")
        shares = [_applied_on(worker, fold["metrics"], topics.events) for fold in body["folds"]]
        assert sum(shares) == len(events) and min(shares) > 0, shares
        # The worker's last batch is its stalest fold's (nothing is stored any more).
        stored = worker.gauge_per_fold(LAST_BATCH)
        assert len(stored) == 2 and all(stored), stored
        assert worker.gauge_max(LAST_BATCH) == min(stored)
        # Its memory is what all its processes hold.
        rss = worker.gauge_per_fold(RSS)
        assert worker.gauge_max(RSS) > sum(rss)  # the folds' and the worker's own

        # One fold that stops stops the worker (exit 1), as with one.
        os.kill(pids[1], signal.SIGKILL)
        running = worker.process
        await wait_for(_async(lambda: running.poll() is not None), message="the worker to stop")
        assert running.returncode == 1
        assert f"the event fold (process {pids[1]}) stopped with exit code -9" in log.read_text()
        await wait_for(_async(lambda: dead(pids[0])), timeout=40, message="the other fold to stop")


#: Enough users that both folds' partitions hold some (keys hash to partitions fixedly).
MANY_USERS = 48


LAST_BATCH = "creditline_last_batch_timestamp_seconds"
RSS = "process_resident_memory_bytes"


def _applied_on(worker: WorkerProcess, url: str, topics: Sequence[str]) -> float:
    """Records applied on one fold's own /metrics page."""
    applied = worker.samples(url).get("creditline_records_applied_total", {})
    return sum(value for labels, value in applied.items() if dict(labels).get("topic") in topics)


async def test_the_worker_and_its_fold_stop_together(
    worker_settings: Settings, tmp_path: Path
) -> None:
    await ensure_topics(worker_settings)
    log = tmp_path / "worker.log"
    worker = WorkerProcess(worker_settings, log)
    try:
        # A graceful stop stops the fold gracefully too: both exit 0.
        worker.start()
        pid = fold_pid(worker)
        assert worker.stop() == 0
        assert dead(pid)
        assert f"[{pid}] [INFO] [^Worker]: Closing event loop" in log.read_text()

        # A stop asked for while both still start is held back until each can act on it:
        # both stop gracefully (Faust's handlers come last; a plain SIGTERM killed them).
        starting = worker.launch()
        pid = _await_fold(starting)
        starting.send_signal(signal.SIGTERM)
        assert starting.wait(timeout=60) == 0
        await wait_for(_async(lambda: dead(pid)), timeout=10, message="the fold to stop")
        assert f"[{pid}] [INFO] [^Worker]: Closing event loop" in log.read_text()

        # A SIGKILLed worker takes its fold with it (as one process would lose its batch).
        worker.start()
        pid = fold_pid(worker)
        worker.kill()
        await wait_for(_async(lambda: dead(pid)), timeout=10, message="the fold to die")

        # A fold that stops stops the worker (exit 1): whatever restarts it restarts both.
        worker.start()
        pid = fold_pid(worker)
        os.kill(pid, signal.SIGKILL)
        running = worker.process
        assert running is not None
        await wait_for(_async(lambda: running.poll() is not None), message="the worker to stop")
        assert running.returncode == 1
        assert f"the event fold (process {pid}) stopped with exit code -9" in log.read_text()
    finally:
        worker.stop()
        await cleanup(worker_settings)


def _async(condition: Any) -> Any:
    async def check() -> bool:
        return bool(condition())

    return check

"""The fold process's settings and how its metrics page is read (a loopback web server)."""

from __future__ import annotations

import signal
import time
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from streams.runtime import fold_process
from streams.runtime.fold_process import FoldProcess, FoldProcesses
from streams.settings import Settings


def test_the_fold_runs_the_worker_settings_as_role_events_on_a_loopback_port() -> None:
    worker = Settings().model_copy(
        update={"app_id": "app-x", "web_host": "0.0.0.0", "worker_fold_nice": 7}
    )
    fold = FoldProcess(worker)
    assert fold.settings == worker.model_copy(
        update={"worker_role": "events", "web_host": "127.0.0.1", "web_port": fold.port}
    )
    assert fold.port != worker.web_port
    assert fold.pid is None and fold.exit_code() is None and not fold.running()


def test_several_folds_each_have_a_loopback_port_of_their_own() -> None:
    folds = FoldProcesses(Settings().model_copy(update={"worker_folds": 3}))
    ports = [fold.port for fold in folds.processes]
    assert len(set(ports)) == 3
    assert all(fold.settings.worker_role == "events" for fold in folds.processes)
    assert folds.stopped_on_its_own() is None and not folds.running()


class Page:
    """A /metrics page served on a loopback port; ``status`` and ``body`` can change."""

    def __init__(self) -> None:
        self.status = 200
        self.body = "a_total 1.0\n"

    async def handle(self, request: web.Request) -> web.Response:
        return web.Response(status=self.status, text=self.body)


@pytest.fixture
async def served(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[FoldProcess, Page]]:
    page = Page()
    app = web.Application()
    app.router.add_get("/metrics", page.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    fold = FoldProcess(Settings())
    site = web.TCPSite(runner, "127.0.0.1", fold.port)
    await site.start()
    try:
        yield fold, page
    finally:
        await runner.cleanup()


async def test_a_page_not_read_now_is_the_last_one_read_while_it_is_recent(
    served: tuple[FoldProcess, Page], monkeypatch: pytest.MonkeyPatch
) -> None:
    fold, page = served
    async with aiohttp.ClientSession() as session:
        page.status = 503
        assert await fold.metrics_text(session) == ""  # none read yet: the fold is starting
        page.status = 200
        assert await fold.metrics_text(session) == "a_total 1.0\n"
        page.body = "a_total 2.0\n"
        assert await fold.metrics_text(session) == "a_total 2.0\n"
        page.status = 500
        assert await fold.metrics_text(session) == "a_total 2.0\n"
        monkeypatch.setattr(fold_process, "METRICS_MAX_AGE_SECONDS", -1.0)
        assert await fold.metrics_text(session) is None  # too old: the scrape fails


def _count_sigterms(log: Path, settings: Settings) -> None:
    """A stand-in fold: records each SIGTERM, and takes a moment to stop after the first."""
    received: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    log.write_text("ready")
    while not received:
        time.sleep(0.01)
    log.write_text("stopping")
    time.sleep(0.5)  # still finishing its batch when the worker's own shutdown ends
    log.write_text(str(len(received)))


def test_a_stopping_fold_gets_one_sigterm_however_often_it_is_asked(tmp_path: Path) -> None:
    log = tmp_path / "sigterms"
    fold = FoldProcess(Settings())
    fold.start(partial(_count_sigterms, log))
    deadline = time.monotonic() + 10
    while not log.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    fold.terminate()  # as the worker begins to stop
    fold.stop(timeout=10)  # as the command line waits for it
    assert fold.exit_code() == 0
    assert log.read_text() == "1"


def test_stopping_several_folds_sends_each_one_sigterm_in_all(tmp_path: Path) -> None:
    # The worker asks its folds to stop as it stops, then the command line stops them
    # (waiting for them): a second SIGTERM was sent there, and printed an ignored EBADF.
    folds = FoldProcesses(Settings().model_copy(update={"worker_folds": 2}))
    logs = [tmp_path / "first", tmp_path / "second"]
    for fold, log in zip(folds.processes, logs, strict=True):
        fold.start(partial(_count_sigterms, log))
    deadline = time.monotonic() + 10
    while not all(log.exists() for log in logs) and time.monotonic() < deadline:
        time.sleep(0.01)
    folds.terminate()  # as the worker begins to stop
    # (Two signals sent at once would merge into one pending signal: let the first land.)
    while any(log.read_text() in ("ready", "") for log in logs) and time.monotonic() < deadline:
        time.sleep(0.01)
    folds.stop(timeout=10)  # as the command line waits for them
    assert [fold.exit_code() for fold in folds.processes] == [0, 0]
    assert [log.read_text() for log in logs] == ["1", "1"]


def _stubborn(log: Path, settings: Settings) -> None:
    """A stand-in fold that ignores SIGTERM (a batch that never ends)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    log.write_text("ready")
    while True:
        time.sleep(0.05)


def _obliging(log: Path, settings: Settings) -> None:
    """A stand-in fold that stops at once on SIGTERM."""
    log.write_text("ready")
    while True:
        time.sleep(0.05)


def test_stopping_several_folds_asks_all_at_once_and_kills_only_what_outlives_the_deadline(
    tmp_path: Path,
) -> None:
    folds = FoldProcesses(Settings().model_copy(update={"worker_folds": 2}))
    stubborn, obliging = folds.processes
    stubborn.start(partial(_stubborn, tmp_path / "stubborn"))
    obliging.start(partial(_obliging, tmp_path / "obliging"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not all(
        (tmp_path / name).exists() for name in ("stubborn", "obliging")
    ):
        time.sleep(0.01)
    assert folds.running() and folds.stopped_on_its_own() is None
    started = time.monotonic()
    folds.stop(timeout=1.0)
    assert 1.0 <= time.monotonic() - started < 5.0  # one deadline, not one per fold
    assert stubborn.exit_code() == -signal.SIGKILL
    assert obliging.exit_code() == -signal.SIGTERM
    assert not folds.running()
    assert folds.stopped_on_its_own() is None  # both were asked to stop


def test_a_fold_that_stops_by_itself_is_told_apart(tmp_path: Path) -> None:
    folds = FoldProcesses(Settings().model_copy(update={"worker_folds": 2}))
    first, second = folds.processes
    first.start(partial(_obliging, tmp_path / "first"))
    second.start(partial(_obliging, tmp_path / "second"))
    try:
        assert second.process is not None
        second.process.kill()
        second.process.join(10)
        assert folds.stopped_on_its_own() is second
        assert not folds.running()
    finally:
        folds.stop(timeout=5.0)


def test_auto_folds_one_per_usable_core_at_most_one_per_partition(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fold_process, "usable_cores", lambda: 6)
    assert fold_process.fold_count(Settings(worker_folds="auto", topic_partitions=12)) == 6
    assert fold_process.fold_count(Settings(worker_folds="auto", topic_partitions=4)) == 4
    assert fold_process.fold_count(Settings(worker_folds=3, topic_partitions=4)) == 3
    assert fold_process.fold_count(Settings(worker_folds=9, topic_partitions=4)) == 9  # as told


def test_one_fold_unless_told() -> None:
    assert Settings().worker_folds == 1
    assert Settings(worker_folds="auto").worker_folds == "auto"
    with pytest.raises(ValueError, match="worker_folds"):
        Settings(worker_folds=0)

"""The event fold of a role-``all`` worker, in a process of its own.

Folding is CPU-bound (about 0.1 s of Python per 1,000 events): on the worker's own event loop
a loan request would wait for the batch being folded. So ``creditline worker`` (role ``all``,
``WORKER_FOLD=process``) answers requests itself and runs the fold — the same units as
``creditline worker --role events`` — in a child process that it starts, watches and stops:

* the child is forked once the worker has imported everything and done its checks, before
  any thread or event loop exists: it starts without importing anything again, and shares
  the worker's memory pages until it writes them;
* it dies with the worker (``PR_SET_PDEATHSIG``): a SIGKILLed worker loses its fold's
  uncommitted batch exactly as a single process would, and it is redelivered;
* when it stops on its own, the worker stops too (exit code 1), so whatever restarts
  workers restarts both, and a fold that cannot run never hides behind a healthy endpoint;
* it runs at a lower priority than the worker (niceness 19, ``WORKER_FOLD_NICE``; with
  ``WORKER_FOLD_IDLE``, Linux's ``SCHED_IDLE`` too): under load, requests go first;
* it serves its metrics on a loopback port of its own; the worker's ``/metrics`` is the sum
  of every process's (:mod:`streams.runtime.exposition`), its ``/healthz`` reports each child;
* with ``WORKER_FOLDS`` above 1 (:class:`FoldProcesses`) there are that many children, each
  a member of the worker's events group folding its share of the partitions, as that many
  ``--role events`` workers would; one stopping stops the worker.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable

import aiohttp

from streams.runtime.net import free_loopback_ports
from streams.runtime.tuning import usable_cores
from streams.settings import Settings

log = logging.getLogger(__name__)

#: ``prctl(PR_SET_PDEATHSIG, sig)``: the signal a child gets when its parent thread dies.
_PR_SET_PDEATHSIG = 1
#: ``prctl(PR_SET_NAME, name)``: the name ``ps``, ``top`` and ``/proc/<pid>/comm`` show.
_PR_SET_NAME = 15
#: The fold's process name (at most 15 bytes), told apart from its worker's in ``ps -o comm``.
FOLD_PROCESS_NAME = "creditline-fold"
#: The fold's metrics are read on every scrape of the worker's. A fold busy with a batch
#: answers late, so a page that is not read in time is replaced by the last one read (its
#: counters never go back, which a scraper would take for a restart) if that is recent.
METRICS_TIMEOUT_SECONDS = 5.0
METRICS_MAX_AGE_SECONDS = 60.0


def _die_with_parent(parent: int) -> None:
    """In the child: be SIGKILLed when the worker dies, however it dies, and be named
    :data:`FOLD_PROCESS_NAME` (Linux)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        libc.prctl(_PR_SET_NAME, FOLD_PROCESS_NAME.encode())
    if os.getppid() != parent:  # the worker died before the line above took effect
        os._exit(1)


def _run_fold(parent: int, settings: Settings, run: Callable[[Settings], None]) -> None:
    _die_with_parent(parent)
    if settings.worker_fold_nice:
        os.nice(settings.worker_fold_nice)  # on top of the niceness inherited from the worker
    if settings.worker_fold_idle:
        _run_on_idle_time()
    run(settings)


def _run_on_idle_time() -> None:
    """Put the calling process under SCHED_IDLE (Linux), where it exists.

    Niceness lowers the fold's share of a busy core, but a request's process that wakes up
    (the decider, Redis, Kafka) may still wait out the fold's slice. Linux counts a core
    running only SCHED_IDLE work as idle: a waking process is put there and runs at once.
    """
    policy = getattr(os, "SCHED_IDLE", None)
    if policy is None:
        return
    try:
        os.sched_setscheduler(0, policy, os.sched_param(0))
    except OSError as exc:  # a sandbox that refuses it: the niceness still ranks the fold
        log.warning("event fold: SCHED_IDLE refused (%s); it runs at its niceness", exc)


class FoldProcess:
    """The child process folding the event topics for a role-``all`` worker."""

    def __init__(self, settings: Settings, port: int | None = None) -> None:
        #: The worker's settings as the fold runs them: role ``events``, metrics on ``port``
        #: (default: a free one) on the loopback address.
        self.settings = settings.model_copy(
            update={
                "worker_role": "events",
                "web_host": "127.0.0.1",
                "web_port": port
                if port is not None
                else free_loopback_ports(1, avoid={settings.web_port})[0],
            }
        )
        self.process: multiprocessing.process.BaseProcess | None = None
        #: Set once the worker has asked the child to stop (its exit is then expected).
        self.stopping = False
        self._page: str | None = None
        self._page_read_at = 0.0

    @property
    def port(self) -> int:
        """The loopback port of the fold's own /metrics."""
        return self.settings.web_port

    def start(self, run: Callable[[Settings], None]) -> None:
        """Fork the child, which calls ``run`` with the fold's settings (it must not return
        before the fold has stopped). Call before any thread or event loop is started: a
        fork copies only the calling thread."""
        context = multiprocessing.get_context("fork")
        self.process = context.Process(
            target=_run_fold, args=(os.getpid(), self.settings, run), name=FOLD_PROCESS_NAME
        )
        self.process.start()
        log.info("event fold started as process %s", self.process.pid)

    @property
    def pid(self) -> int | None:
        """The child's process id, once started."""
        return self.process.pid if self.process is not None else None

    def exit_code(self) -> int | None:
        """The child's exit code if it has stopped (minus the signal if one killed it)."""
        return self.process.exitcode if self.process is not None else None

    def running(self) -> bool:
        """True while the child runs."""
        return self.process is not None and self.process.is_alive()

    def terminate(self) -> None:
        """Ask the child to stop gracefully (it ends its batch in flight after the part in
        hand, uncommitted, to be read again); asked again, do nothing."""
        # One SIGTERM only: a second one can land while the child's event loop is closing,
        # after its signal wake-up pipe is closed and before its handlers are removed, and
        # Python then prints an ignored OSError (EBADF) into the worker's log.
        if self.stopping:
            return
        self.stopping = True
        if self.process is not None and self.process.is_alive():
            self.process.terminate()  # SIGTERM

    def stop(self, timeout: float) -> None:
        """Stop the child: SIGTERM (unless already sent), then SIGKILL if it is still running
        after ``timeout``."""
        self.terminate()
        if self.process is None:
            return
        self.process.join(timeout)
        if self.process.is_alive():
            log.warning("event fold did not stop in %.0f s; killing it", timeout)
            self.process.kill()
            self.process.join()

    async def metrics_text(self, session: aiohttp.ClientSession) -> str | None:
        """The child's /metrics page: read now, else the last one read if recent; "" while
        none has been read yet (the child is starting); None when the last is too old."""
        url = f"http://127.0.0.1:{self.port}/metrics"
        try:
            timeout = aiohttp.ClientTimeout(total=METRICS_TIMEOUT_SECONDS)
            async with session.get(url, timeout=timeout) as response:
                if response.status == 200:
                    self._page = await response.text()
                    self._page_read_at = time.monotonic()
                    return self._page
        except (aiohttp.ClientError, TimeoutError, OSError):
            pass
        if self._page is None:
            return ""
        if time.monotonic() - self._page_read_at <= METRICS_MAX_AGE_SECONDS:
            return self._page
        return None


def fold_count(settings: Settings) -> int:
    """How many fold processes a role-``all`` worker starts: ``CREDITLINE_WORKER_FOLDS``;
    with ``auto``, one per core the worker may use, at most one per event partition (a fold
    without a partition would idle)."""
    if settings.worker_folds != "auto":
        return settings.worker_folds
    return min(usable_cores(), settings.topic_partitions)


class FoldProcesses:
    """The fold processes of a role-``all`` worker (``CREDITLINE_WORKER_FOLDS``): each is a
    member of the worker's event group, folding its share of the partitions as an ``events``
    worker would; the worker starts, watches and stops them as one."""

    def __init__(self, settings: Settings) -> None:
        # Not the worker's own port: the worker binds it only after the folds are forked.
        ports = free_loopback_ports(fold_count(settings), avoid={settings.web_port})
        self.processes = [FoldProcess(settings, port) for port in ports]

    def start(self, run: Callable[[Settings], None]) -> None:
        """Fork every child (see :meth:`FoldProcess.start`)."""
        for process in self.processes:
            process.start(run)

    def stopped_on_its_own(self) -> FoldProcess | None:
        """A child that stopped without being asked to, if any."""
        for process in self.processes:
            if process.exit_code() is not None and not process.stopping:
                return process
        return None

    def running(self) -> bool:
        """True while every child runs."""
        return all(process.running() for process in self.processes)

    def terminate(self) -> None:
        """Ask every child to stop gracefully."""
        for process in self.processes:
            process.terminate()

    def stop(self, timeout: float) -> None:
        """Stop every child: all asked at once, each killed if it still runs once ``timeout``
        (one deadline for them all) has passed."""
        self.terminate()
        deadline = time.monotonic() + timeout
        for process in self.processes:
            process.stop(timeout=max(0.0, deadline - time.monotonic()))

    async def metrics_texts(self, session: aiohttp.ClientSession) -> list[str] | None:
        """Every child's /metrics page (see :meth:`FoldProcess.metrics_text`), those not read
        yet left out; None when one is too old to stand in."""
        pages = await asyncio.gather(*(p.metrics_text(session) for p in self.processes))
        if any(page is None for page in pages):
            return None
        return [page for page in pages if page]

"""``creditline worker``: run the worker."""

from __future__ import annotations

import os
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from streams.cli.root import app, run
from streams.settings import Settings, get_settings

if TYPE_CHECKING:
    from streams.runtime.fold_process import FoldProcesses


class Role(StrEnum):
    """What a worker runs (CREDITLINE_WORKER_ROLE)."""

    ALL = "all"
    EVENTS = "events"
    DECISIONS = "decisions"


@app.command(rich_help_panel="Run")
def worker(
    role: Annotated[
        Role | None,
        typer.Option(help="What to run (default CREDITLINE_WORKER_ROLE, else all)."),
    ] = None,
) -> None:
    """Run the Faust worker (folds events, answers loan requests, serves /metrics)."""
    from streams.adapters.kafka.access import check_worker_access
    from streams.adapters.kafka.admin import (
        adopt_loan_request_offsets,
        assert_groups_joinable,
        ensure_topics,
    )
    from streams.runtime.faust_setup import hold_stop_signals
    from streams.runtime.fold_process import FoldProcesses

    settings = get_settings()
    if role is not None:
        settings = settings.model_copy(update={"worker_role": role.value})
    if settings.worker_nice:
        os.nice(settings.worker_nice)  # bulk folding yields the CPU to latency-bound work
    run(ensure_topics(settings))
    # A missing ACL is one line now, not a worker waiting for ever to join its group.
    run(check_worker_access(settings))
    # Older workers still in a group: one line now, not a worker that never joins.
    run(assert_groups_joinable(settings))
    run(adopt_loan_request_offsets(settings))
    run(_ensure_layout(settings))
    # From here a stop asked for while Faust starts (in the worker or in the fold, which
    # inherits the mask when forked) waits for Faust's handlers and is a graceful stop.
    hold_stop_signals()
    if settings.worker_role != "all" or settings.worker_fold != "process":
        _run_worker(settings)
        return
    folds = FoldProcesses(settings)
    folds.start(_run_worker)  # forked here: no thread and no event loop exist yet
    try:
        _run_worker(settings, folds)
    finally:
        # The folds were asked to stop as the worker stopped; give them time to commit.
        folds.stop(timeout=FOLD_STOP_SECONDS)


#: How long a stopping worker waits for its fold processes to finish their batches in flight.
FOLD_STOP_SECONDS = 30.0


def _run_worker(settings: Settings, folds: FoldProcesses | None = None) -> None:
    """Run the Faust app of these settings until it stops (raises SystemExit)."""
    from streams.metrics import Metrics
    from streams.runtime.app import build_app
    from streams.runtime.faust_setup import StoppableWorker
    from streams.runtime.tuning import tune_garbage_collector

    faust_app = build_app(settings, Metrics(), folds)
    tune_garbage_collector()
    StoppableWorker(faust_app, loglevel=settings.log_level, quiet=True).execute_from_commandline()


#: How long a starting worker waits for a Redis that is unreachable or too slow to answer
#: (started after the worker, restarting, failing over) before it gives up with exit code 3.
#: A running worker waits for it batch by batch, for ever; an orchestrator restarts one that
#: gave up. Refused credentials or commands and an older key layout fail at once.
STARTUP_REDIS_WAIT_SECONDS = 60.0


async def _ensure_layout(settings: Settings) -> None:
    from streams.adapters.redis.store import RedisStore
    from streams.metrics import Metrics
    from streams.service.shell import Retrier

    metrics = Metrics()
    store = RedisStore.connect(settings, metrics)
    try:
        # Retried like a running worker's store calls (a warning per retry): one timeout
        # while the machine is busy must not stop a worker before it began.
        retrier = Retrier(metrics, should_stop=lambda: False)
        await retrier.bounded("layout", store.ensure_layout, STARTUP_REDIS_WAIT_SECONDS)
    finally:
        await store.close()


# ---- publishing ----------------------------------------------------------------------------

"""``creditline worker``: run the worker."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated

import typer

from streams.settings import Settings, get_settings

if TYPE_CHECKING:
    pass
from streams.cli.app import (
    app,
    fail,
    run,
)


@app.command()
def worker(
    role: Annotated[
        str | None,
        typer.Option(help="all (default), events or decisions; see CREDITLINE_WORKER_ROLE."),
    ] = None,
) -> None:
    """Run the Faust worker (folds events, answers loan requests, serves /metrics)."""
    from faust.worker import Worker

    from streams.adapters.kafka.access import check_worker_access
    from streams.adapters.kafka.admin import adopt_loan_request_offsets, ensure_topics
    from streams.metrics import Metrics
    from streams.runtime.app import build_app
    from streams.runtime.tuning import tune_garbage_collector

    settings = get_settings()
    if role is not None:
        if role not in ("all", "events", "decisions"):
            fail(f"--role must be all, events or decisions, not {role!r}")
        settings = settings.model_copy(update={"worker_role": role})
    if settings.worker_nice:
        os.nice(settings.worker_nice)  # bulk folding yields the CPU to latency-bound work
    run(ensure_topics(settings))
    # A missing ACL is one line now, not a worker waiting for ever to join its group.
    run(check_worker_access(settings))
    run(adopt_loan_request_offsets(settings))
    run(_ensure_layout(settings))
    faust_app = build_app(settings, Metrics())
    tune_garbage_collector()
    Worker(faust_app, loglevel=settings.log_level, quiet=True).execute_from_commandline()


async def _ensure_layout(settings: Settings) -> None:
    from streams.adapters.redis.store import RedisStore
    from streams.metrics import Metrics

    store = RedisStore.connect(settings, Metrics())
    try:
        await store.ensure_layout()
    finally:
        await store.close()


# ---- publishing ----------------------------------------------------------------------------

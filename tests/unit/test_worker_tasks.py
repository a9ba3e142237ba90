"""The worker's background tasks keep the worker running through a broker that is away."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from streams.runtime import app as runtime


class FlakyLag:
    """A lag monitor whose broker is away for its first two starts."""

    starts = 0
    measured = asyncio.Event()

    def __init__(self, settings: Any, metrics: Any) -> None:
        pass

    async def start(self) -> None:
        FlakyLag.starts += 1
        if FlakyLag.starts <= 2:
            raise ConnectionError("Kafka is not reachable")

    async def measure(self) -> dict[str, int]:
        FlakyLag.measured.set()
        return {}

    async def stop(self) -> None:
        return None


async def test_the_lag_exporter_waits_for_a_broker_away_at_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runtime, "LagMonitor", FlakyLag)
    app = SimpleNamespace(should_stop=False)
    parts = SimpleNamespace(settings=SimpleNamespace(lag_interval_seconds=0.01), metrics=None)
    worker = runtime._Worker(app, parts, None)  # type: ignore[arg-type]
    task = asyncio.create_task(worker.export_consumer_lag())
    await asyncio.wait_for(FlakyLag.measured.wait(), 5)  # measured after two failed starts
    assert FlakyLag.starts == 3 and not task.done()
    app.should_stop = True
    await asyncio.wait_for(task, 5)

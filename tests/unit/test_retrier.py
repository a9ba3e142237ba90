"""The store retrier: backoff and counting on failures, and no garbage cycles on success."""

from __future__ import annotations

import gc
import logging

import pytest
from prometheus_client import CollectorRegistry

from streams.errors import ShuttingDown, Unavailable
from streams.metrics import Metrics
from streams.service.shell import Retrier


class Flaky:
    """A store call that fails ``failures`` times before it answers."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise Unavailable("store away")
        return "answer"


def retries(registry: CollectorRegistry, operation: str) -> float:
    value = registry.get_sample_value("creditline_store_retries_total", {"operation": operation})
    return value or 0.0


def retrier(stopping: bool = False) -> tuple[Retrier, CollectorRegistry]:
    registry = CollectorRegistry()
    return Retrier(Metrics(registry), lambda: stopping), registry


async def test_a_call_that_succeeds_leaves_no_reference_cycles() -> None:
    # Cyclic garbage is what makes the collector pause a loan request: two store calls per
    # request must leave none (tenacity's per-call state did, ~40 objects a call).
    retry, _ = retrier()
    call = Flaky(0)
    gc.collect()
    gc.disable()
    try:
        for _ in range(200):
            assert await retry.until_stopped("load", call) == "answer"
            assert await retry.bounded("load", call, 1.0) == "answer"
        unreachable = gc.collect()
    finally:
        gc.enable()
    assert unreachable < 20  # the event loop's own odds and ends, not 400 calls' worth


async def test_failures_are_retried_with_backoff_counted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    retry, metrics = retrier()
    call = Flaky(3)
    with caplog.at_level(logging.WARNING, logger="streams.service.shell"):
        assert await retry.until_stopped("save", call) == "answer"
    assert call.calls == 4
    assert retries(metrics, "save") == 3
    assert [r.getMessage() for r in caplog.records] == [
        f"store save failed (Unavailable); retry {n}" for n in (1, 2, 3)
    ]


async def test_a_stopping_process_gives_the_work_back_at_the_first_failure() -> None:
    retry, metrics = retrier(stopping=True)
    call = Flaky(5)
    with pytest.raises(ShuttingDown):
        await retry.until_stopped("load", call)
    assert call.calls == 1
    assert retries(metrics, "load") == 0


async def test_bounded_retries_end_with_the_store_error() -> None:
    retry, metrics = retrier()
    call = Flaky(1_000)
    with pytest.raises(Unavailable):
        await retry.bounded("read", call, 0.5)
    # 0.05 + 0.1 + 0.2 s of backoff fit in half a second, and one more attempt at most.
    assert 3 <= call.calls <= 5
    assert retries(metrics, "read") == call.calls - 1


async def test_bounded_retries_answer_once_the_store_is_back() -> None:
    retry, metrics = retrier()
    call = Flaky(2)
    assert await retry.bounded("read", call, 5.0) == "answer"
    assert (call.calls, retries(metrics, "read")) == (3, 2)

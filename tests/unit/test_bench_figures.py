"""The benchmark's figures read from a worker's histograms (pure arithmetic)."""

from __future__ import annotations

import math

import pytest

from bench.run import histogram_quantile

NAME = "creditline_redis_operation_seconds"


def buckets(counts: dict[str, float], **labels: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted({**labels, "le": le}.items())): n for le, n in counts.items()}


def test_a_quantile_is_interpolated_within_its_bucket_as_promql_does() -> None:
    # 100 observations: 50 up to 10 ms, 40 more up to 25 ms, 10 more up to 50 ms.
    samples = {
        f"{NAME}_bucket": buckets(
            {"0.01": 50, "0.025": 90, "0.05": 100, "+Inf": 100}, operation="save"
        )
    }
    assert histogram_quantile(samples, NAME, 0.5, operation="save") == pytest.approx(0.01)
    assert histogram_quantile(samples, NAME, 0.7, operation="save") == pytest.approx(0.0175)
    assert histogram_quantile(samples, NAME, 0.99, operation="save") == pytest.approx(0.0475)


def test_only_the_samples_with_the_labels_asked_for_count() -> None:
    samples = {
        f"{NAME}_bucket": buckets({"0.01": 10, "+Inf": 10}, operation="save")
        | buckets({"0.01": 0, "1.0": 10, "+Inf": 10}, operation="read_state")
    }
    assert histogram_quantile(samples, NAME, 0.5, operation="read_state") == pytest.approx(0.505)
    assert histogram_quantile(samples, NAME, 0.5, operation="load") is None


def test_observations_above_the_last_bound_give_that_bound() -> None:
    samples = {f"{NAME}_bucket": buckets({"0.01": 0, "+Inf": 5})}
    assert histogram_quantile(samples, NAME, 0.99) == pytest.approx(0.01)
    assert not math.isnan(histogram_quantile(samples, NAME, 0.5) or 0.0)

"""The benchmark's figures read from a worker's histograms (pure arithmetic)."""

from __future__ import annotations

import argparse
import math

import pytest

from bench.__main__ import fold_setting
from bench.run import cost_growth, fold_batches, half_the_fold, histogram_quantile
from bench.soak import (
    RssSample,
    by_window,
    largest_batch_bound,
    rss_steps,
    rss_trend,
    slope_per_10_minutes,
)

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


def test_the_soak_slope_is_the_least_squares_growth_per_ten_minutes() -> None:
    assert slope_per_10_minutes([(0, 100.0), (10, 110.0), (20, 120.0)]) == pytest.approx(10.0)
    assert slope_per_10_minutes([(0, 100.0), (5, 104.0), (10, 100.0)]) == pytest.approx(0.0)
    assert slope_per_10_minutes([(3, 100.0)]) == 0.0
    assert slope_per_10_minutes([(3, 100.0), (3, 120.0)]) == 0.0


def test_the_soak_trend_starts_after_the_warm_up() -> None:
    samples = [
        RssSample(0.0, 50.0, 40.0),  # start-up, before the working set is reached
        RssSample(5.0, 100.0, 80.0),
        RssSample(15.0, 101.0, 84.0),
        RssSample(25.0, 102.0, 82.0),
    ]
    trend = rss_trend(samples, warmup_minutes=5)
    assert trend["samples"] == 3
    assert trend["worker"] == {
        "after_warmup_mib": 100.0,
        "at_end_mib": 102.0,
        "peak_mib": 102.0,
        "growth_mib": 2.0,
        "growth_ratio": 1.02,
        "slope_mib_per_10_min": 1.0,
    }
    assert trend["fold"]["peak_mib"] == 84.0
    assert trend["total"]["growth_mib"] == 4.0
    # A run shorter than its warm-up is judged on every sample rather than on none.
    assert rss_trend(samples[:1], warmup_minutes=5)["samples"] == 1


def test_the_largest_batch_between_two_readings_is_bounded_by_its_bucket() -> None:
    inf = math.inf
    before = {100.0: 10.0, 1000.0: 12.0, 5000.0: 12.0, inf: 12.0}
    # Three batches since: two of at most 100 records, one between 1,000 and 5,000.
    after = {100.0: 12.0, 1000.0: 14.0, 5000.0: 15.0, inf: 15.0}
    assert largest_batch_bound(before, after) == 5000.0
    assert largest_batch_bound(before, before) is None
    assert largest_batch_bound(before, {**after, inf: 16.0}) == inf  # above the last bucket
    # The first reading after the worker started: every batch is new.
    assert largest_batch_bound({}, {100.0: 4.0, 1000.0: 4.0, inf: 4.0}) == 100.0


def test_the_soak_reports_each_step_of_the_folds_memory_with_its_largest_batch() -> None:
    samples = [
        RssSample(0.0, 80.0, 70.0),
        RssSample(0.5, 80.0, 70.5, largest_batch=500.0),  # under a step
        RssSample(1.0, 80.0, 82.0, largest_batch=5000.0),
        RssSample(1.5, 90.0, 82.0, largest_batch=math.inf),  # the worker's own rise
        RssSample(2.0, 90.0, 84.0, largest_batch=None),
    ]
    assert rss_steps(samples) == [
        {"minute": 1.0, "fold_mib": [70.5, 82.0], "largest_batch_at_most": "5,000"},
        {"minute": 2.0, "fold_mib": [82.0, 84.0], "largest_batch_at_most": None},
    ]
    assert rss_steps(samples, least_mib=5.0) == rss_steps(samples)[:1]
    assert rss_steps(samples[:1]) == []


def test_the_soak_reports_latency_per_window_so_a_growing_tail_shows() -> None:
    points = [(0.5, 0.010), (1.2, 0.020), (1.9, 0.030), (4.1, 2.0)]
    windows = by_window(points, width_minutes=2)
    assert [w["from_minute"] for w in windows] == [0, 4]
    assert [w["count"] for w in windows] == [3, 1]
    assert windows[0]["max_ms"] == 30.0
    assert windows[1]["p99_ms"] == 2000.0
    assert by_window([], width_minutes=2) == []
    with pytest.raises(ValueError, match="window must be positive"):
        by_window(points, width_minutes=0)


def test_freshness_runs_at_half_the_folds_pace_under_overload_first() -> None:
    both = {"overload": {"fold_per_s_under_load": 2_470}, "ingest": {"scorer_per_s": 3_344}}
    assert half_the_fold(both) == 1_235
    assert half_the_fold({"ingest": {"scorer_per_s": 3_344}}) == 1_672
    assert half_the_fold({}) == 1_000


def test_the_cost_growth_is_the_larger_ingests_cpu_per_event_over_the_smallers() -> None:
    large, small = {"scorer_cpu_us_per_event": 175.0}, {"scorer_cpu_us_per_event": 140.0}
    assert cost_growth(large, small) == 1.25
    assert cost_growth(large, {}) is None
    assert cost_growth({"scorer_cpu_us_per_event": 0.0}, small) is None


def test_bench_folds_takes_a_count_or_auto() -> None:
    assert fold_setting("2") == 2
    assert fold_setting("auto") == "auto"
    for refused in ("0", "-1", "two", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            fold_setting(refused)


def test_the_fold_batches_are_counted_over_every_fold_with_their_mean_size() -> None:
    # Two fold processes' batch-size histograms, as the worker's /metrics sums them.
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {
        "creditline_batch_size_records_count": {
            (("process", "1"),): 30.0,
            (("process", "2"),): 10.0,
        },
        "creditline_batch_size_records_sum": {
            (("process", "1"),): 900.0,
            (("process", "2"),): 100.0,
        },
    }
    assert fold_batches(samples) == (40, 25.0)


def test_no_batch_counted_yet_gives_no_figure() -> None:
    assert fold_batches({}) is None
    assert fold_batches({"creditline_batch_size_records_count": {(): 0.0}}) is None

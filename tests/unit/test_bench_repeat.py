"""A scenario run several times, summarised (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from bench.repeat import (
    FRESHNESS_RANK,
    KEY_FIGURES,
    figure,
    median_run,
    next_overload_rate,
    spread,
    summarised,
)
from bench.run import half_the_fold


def run(over: float, fresh: float, answered: str = "10 of 10", **more: Any) -> dict[str, Any]:
    return {
        "p99_over_echo_ms": over,
        "echo": {"p99_ms": 5.0},
        "freshness_after_warmup": {"p99_ms": fresh, "p95_ms": fresh / 2},
        "requests_answered": answered,
        **more,
    }


def test_a_figure_is_read_by_its_path_and_nothing_stands_for_a_missing_one() -> None:
    one = run(12.5, 300.0)
    assert figure(one, ("p99_over_echo_ms",)) == 12.5
    assert figure(one, ("freshness_after_warmup", "p99_ms")) == 300.0
    assert figure(one, ("drain_seconds",)) is None
    assert figure(one, ("echo", "p99_ms", "deeper")) is None
    assert figure({"echo": {"p99_ms": float("nan")}}, ("echo", "p99_ms")) is None
    assert figure({"flag": True}, ("flag",)) is None


def test_the_median_run_is_a_measured_run_the_lower_middle_for_an_even_count() -> None:
    runs = [run(30.0, 100.0), run(10.0, 900.0), run(20.0, 500.0)]
    assert median_run(runs, KEY_FIGURES[0]) is runs[2]
    assert median_run(runs, FRESHNESS_RANK) is runs[2]
    four = [*runs, run(25.0, 50.0)]
    assert median_run(four, KEY_FIGURES[0]) is runs[2]  # 10, 20 | 25, 30: the lower middle
    assert median_run(four, FRESHNESS_RANK) is runs[0]  # 50, 100 | 500, 900
    with pytest.raises(ValueError, match="no runs"):
        median_run([], KEY_FIGURES[0])
    # No run has the figure: the first stands for them.
    assert median_run([{"x": 1}, {"x": 2}], KEY_FIGURES[0]) == {"x": 1}


def test_the_spread_keeps_every_runs_value_in_order_with_median_and_range() -> None:
    runs = [run(30.0, 100.0, "9 of 10"), run(10.0, 900.0), run(20.0, 500.0)]
    summary = spread(runs)
    assert summary["p99_over_echo_ms"] == {
        "median": 20.0,
        "min": 10.0,
        "max": 30.0,
        "runs": [30.0, 10.0, 20.0],
    }
    assert summary["freshness_after_warmup.p95_ms"]["median"] == 250.0
    assert summary["echo.p99_ms"]["runs"] == [5.0, 5.0, 5.0]
    assert "drain_seconds" not in summary  # no run measured it
    assert summary["requests_answered"] == {"runs": ["9 of 10", "10 of 10", "10 of 10"]}
    # An even count: the median is the mean of the two middle values.
    assert spread([run(10.0, 1.0), run(20.0, 1.0)])["p99_over_echo_ms"]["median"] == 15.0


def test_one_run_stands_for_itself_several_carry_their_spread() -> None:
    one = run(12.0, 200.0)
    assert summarised([one], KEY_FIGURES[0]) == one
    runs = [run(30.0, 100.0), run(10.0, 900.0), run(20.0, 500.0)]
    summary = summarised(runs, FRESHNESS_RANK)
    assert summary["p99_over_echo_ms"] == 20.0  # the run with the median freshness
    assert summary["repeated"]["count"] == 3
    assert summary["repeated"]["p99_over_echo_ms"]["runs"] == [30.0, 10.0, 20.0]
    assert "repeated" not in runs[2]  # the runs themselves are not changed


def test_freshness_after_repeated_overloads_runs_at_half_their_median_pace() -> None:
    overloads = [
        run(40.0, 1.0, fold_per_s_under_load=3_000),
        run(50.0, 1.0, fold_per_s_under_load=4_000),
        run(60.0, 1.0, fold_per_s_under_load=3_800),
    ]
    # The representative run (by decisions) has 4,000; the median pace is 3,800.
    assert half_the_fold({"overload": summarised(overloads, KEY_FIGURES[0])}) == 1_900


def test_a_later_overload_round_aims_at_twice_the_pace_of_the_rounds_that_outran_the_fold() -> None:
    outran = [
        run(50.0, 1.0, fold_per_s_under_load=6_937, lag_at_end_of_load=304_148),
        run(60.0, 1.0, fold_per_s_under_load=5_508, lag_at_end_of_load=397_882),
        run(55.0, 1.0, fold_per_s_under_load=6_300, lag_at_end_of_load=345_776),
    ]
    assert next_overload_rate(outran, 15_446.0) == 12_600.0
    # A round the fold kept up with measured the arrivals, not the fold: it does not count.
    kept_up = run(10.0, 1.0, fold_per_s_under_load=1_854, lag_at_end_of_load=0)
    assert next_overload_rate([kept_up, outran[0]], 4_000.0) == 13_874.0
    # No round outran the fold: arrivals double.
    assert next_overload_rate([kept_up], 4_000.0) == 8_000.0

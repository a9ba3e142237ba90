"""A scenario run several times, summarised. Pure.

On two shared cores the latency and freshness figures of one run swing up to ×2 between
two runs of the same code (docs/sizing.md): a single run cannot say whether a target is
met. ``make bench --repeat N`` runs each latency scenario N times (the layouts alternating
round by round, so a noisy spell falls on all of them) and reports, beside the median run,
every run's key figures with their median and range.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

#: The figures summarised across runs, as paths into a run's result; the first is the one
#: the representative (median) run is chosen by.
KEY_FIGURES: tuple[tuple[str, ...], ...] = (
    ("p99_over_echo_ms",),
    ("p99_over_echo_beside_ms",),
    ("echo", "p99_ms"),
    ("scorer", "p99_ms"),
    ("freshness_after_warmup", "p99_ms"),
    ("freshness_after_warmup", "p95_ms"),
    ("fold_per_s_under_load",),
    ("arrivals_over_fold_pace",),
    ("lag_at_end_of_load",),
    ("drain_seconds",),
    ("events_unaccounted",),
)
#: Freshness runs are ranked by their freshness, the others by their decisions' tail.
FRESHNESS_RANK = ("freshness_after_warmup", "p99_ms")


def figure(run: dict[str, Any], path: Sequence[str]) -> float | None:
    """The number at ``path`` in a run's result, or None when it has none."""
    value: Any = run
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return None  # a NaN (no sample) says nothing
    return float(value)


def median_run(runs: Sequence[dict[str, Any]], rank: Sequence[str]) -> dict[str, Any]:
    """The run whose ``rank`` figure is the median (the lower of the two middle ones for an
    even count: a figure that was measured, not an average of two)."""
    if not runs:
        raise ValueError("no runs")
    ranked = [run for run in runs if figure(run, rank) is not None]
    if not ranked:
        return runs[0]
    ranked.sort(key=lambda run: figure(run, rank) or 0.0)
    return ranked[(len(ranked) - 1) // 2]


def spread(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each key figure across the runs: its values in run order, median, least and most.
    Figures no run measured are left out."""
    out: dict[str, dict[str, Any]] = {}
    for path in KEY_FIGURES:
        values = [v for run in runs if (v := figure(run, path)) is not None]
        if not values:
            continue
        out[".".join(path)] = {
            "median": round(statistics.median(values), 2),
            "min": min(values),
            "max": max(values),
            "runs": values,
        }
    answered = [run.get("requests_answered") for run in runs if "requests_answered" in run]
    if answered:
        out["requests_answered"] = {"runs": answered}
    return out


def summarised(runs: Sequence[dict[str, Any]], rank: Sequence[str]) -> dict[str, Any]:
    """One run's result standing for ``runs``: the median run (by ``rank``), with the key
    figures of every run under ``repeated`` when there was more than one."""
    representative = dict(median_run(runs, rank))
    if len(runs) > 1:
        representative["repeated"] = {"count": len(runs), **spread(runs)}
    return representative


def next_overload_rate(runs: Sequence[dict[str, Any]], rate: float) -> float:
    """The arrival rate of the next overload round: twice the fold's median pace in the
    rounds that outran it (events left behind at the end: the pace was its capacity), or
    twice ``rate`` when none did. A first guess from a backfill's rate misses the fold's pace
    beside live requests (×2.45 it, on 2026-12-05)."""
    saturated = [
        pace
        for run in runs
        if (figure(run, ("lag_at_end_of_load",)) or 0) > 0
        and (pace := figure(run, ("fold_per_s_under_load",)))
    ]
    if not saturated:
        return 2 * rate
    return float(round(2 * statistics.median(saturated)))

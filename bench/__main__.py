"""``python -m bench``: run the scenarios, print a table, write JSON to bench-results/."""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.fold_cpu import fold_cpu
from bench.repeat import FRESHNESS_RANK, KEY_FIGURES, next_overload_rate, summarised
from bench.run import LAYOUTS, cost_growth, half_the_fold, ingest, latency, machine
from bench.soak import soak
from streams.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--events",
        type=int,
        default=500_000,
        help="ingest: events preloaded (fold: 2/5 of them, over a tenth as many users)",
    )
    parser.add_argument("--users", type=int, default=50_000, help="ingest: users")
    parser.add_argument(
        "--footprint-users",
        type=int,
        default=100_000,
        help="footprint: users (about 3 events each)",
    )
    parser.add_argument(
        "--folds",
        type=fold_setting,
        default=None,
        help="fold processes of every default worker, a number or auto (CREDITLINE_WORKER_FOLDS;"
        " default: as the environment sets it, else 1)",
    )
    parser.add_argument("--scale-events", type=int, default=200_000, help="scale-out: events")
    parser.add_argument("--seconds", type=float, default=60, help="latency: duration")
    parser.add_argument("--event-rate", type=float, default=2000, help="latency: events/s")
    parser.add_argument("--request-rate", type=float, default=100, help="latency: requests/s")
    parser.add_argument(
        "--layouts",
        default="default,inline",
        help="latency: how the scorer runs, comma-separated: default (`creditline worker`), "
        "inline (its fold on the worker's event loop), split (two workers); each beside its "
        "own echo baseline",
    )
    parser.add_argument(
        "--overload-rate",
        type=float,
        default=None,
        help="overload: events/s (default twice the fold's rate measured by ingest in the "
        "same run, else 6,000; with --repeat, each later round at twice the fold's pace "
        "measured under overload in the rounds before)",
    )
    parser.add_argument(
        "--freshness-rate",
        type=float,
        default=None,
        help="freshness: events/s (default half the fold's pace under overload in the same "
        "run, else half its ingest rate, else 1,000)",
    )
    parser.add_argument(
        "--event-workers",
        type=int,
        default=1,
        help="latency: events workers beside the decisions worker",
    )
    parser.add_argument(
        "--events-nice",
        type=int,
        default=0,
        help="latency: CREDITLINE_WORKER_NICE of the events workers (0 = same as decisions)",
    )
    parser.add_argument(
        "--no-peer",
        action="store_true",
        help="ingest: skip the Quix Streams peer (its venv is built on first use)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="latency, overload and freshness: runs of each (layouts alternating round by "
        "round); the median run is reported with every run's key figures beside it",
    )
    parser.add_argument("--soak-minutes", type=float, default=30, help="soak: duration (minutes)")
    parser.add_argument("--soak-users", type=int, default=100_000, help="soak: users")
    parser.add_argument("--quick", action="store_true", help="a tenth of every size")
    parser.add_argument(
        "--only",
        choices=[
            "ingest",
            "latency",
            "overload",
            "freshness",
            "footprint",
            "scale",
            "soak",
            "fold",
        ],
        action="append",
        help="run only these scenarios (soak runs only when named: `make bench-soak`; fold, "
        "the fold's CPU per event in this process against Redis alone, only when named)",
    )
    args = parser.parse_args()
    if args.quick:
        args.events //= 10
        args.users //= 10
        args.footprint_users //= 10
        args.scale_events //= 10
        args.seconds = max(10, args.seconds / 6)
        args.soak_minutes = max(2, args.soak_minutes / 10)
    if args.repeat < 1:
        parser.error("--repeat: at least 1")
    only = set(args.only or ["ingest", "latency", "overload", "freshness", "footprint", "scale"])
    layouts = [layout.strip() for layout in args.layouts.split(",") if layout.strip()]
    unknown = set(layouts) - set(LAYOUTS)
    if unknown:
        parser.error(f"--layouts: unknown {', '.join(sorted(unknown))} (known: {LAYOUTS})")
    out = Path("bench-results")
    out.mkdir(exist_ok=True)
    logs = out / "logs"
    logs.mkdir(exist_ok=True)
    console = Console()
    base = Settings()
    if args.folds is not None:
        base = base.model_copy(update={"worker_folds": args.folds})
    results: dict[str, Any] = {"machine": machine(), "args": vars(args)}

    async def default_worker_runs(
        name: str, rate: float, why: str, rank: tuple[str, ...], aimed: bool = False
    ) -> dict[str, Any]:
        """The default worker at ``rate`` events/s, ``--repeat`` times, summarised; when
        ``aimed``, each round after the first at twice the fold's pace measured so far."""
        runs: list[dict[str, Any]] = []
        for round_ in range(args.repeat):
            if aimed and runs:
                rate = next_overload_rate(runs, rate)
            console.print(
                f"{name}{rounds(round_, args.repeat)}: {args.seconds:.0f} s at {rate:,.0f} "
                f"events/s ({why}) and {args.request_rate:,.0f} requests/s …"
            )
            runs.append(await latency(base, args.seconds, rate, args.request_rate, logs, "default"))
        return summarised(runs, rank)

    async def run() -> None:
        if "ingest" in only:
            console.print(f"ingest: {args.events:,} events, {args.users:,} users …")
            results["ingest"] = await ingest(
                base, args.events, args.users, 1, logs, True, with_peer=not args.no_peer
            )
            # The same history depth at a tenth of the size: is the cost per event flat?
            tenth = max(1, args.events // 10), max(1, args.users // 10)
            console.print(f"ingest at a tenth: {tenth[0]:,} events, {tenth[1]:,} users …")
            small = await ingest(base, *tenth, 1, logs, True)
            results["ingest_tenth"] = small
            results["ingest"]["cpu_per_event_over_tenth"] = cost_growth(results["ingest"], small)
        if "latency" in only:
            runs: dict[str, list[dict[str, Any]]] = {layout: [] for layout in layouts}
            for round_ in range(args.repeat):
                for layout in layouts:
                    console.print(
                        f"latency ({layout}{rounds(round_, args.repeat)}): "
                        f"{args.seconds:.0f} s at {args.event_rate:,.0f} events/s and "
                        f"{args.request_rate:,.0f} requests/s …"
                    )
                    runs[layout].append(
                        await latency(
                            base,
                            args.seconds,
                            args.event_rate,
                            args.request_rate,
                            logs,
                            layout,
                            args.event_workers,
                            args.events_nice,
                        )
                    )
            for layout in layouts:
                results[f"latency_{layout}"] = summarised(runs[layout], KEY_FIGURES[0])
        if "overload" in only:
            fold_rate = (results.get("ingest") or {}).get("scorer_per_s")
            rate = args.overload_rate or (2 * fold_rate if fold_rate else 6000)
            results["overload"] = await default_worker_runs(
                "overload",
                rate,
                "twice the fold's rate",
                KEY_FIGURES[0],
                aimed=args.overload_rate is None,
            )
        if "freshness" in only:
            rate = args.freshness_rate or half_the_fold(results)
            results["freshness"] = await default_worker_runs(
                "freshness", rate, "half the fold's pace", FRESHNESS_RANK
            )
        if "footprint" in only:
            console.print(f"footprint: {args.footprint_users:,} users …")
            results["footprint"] = await ingest(
                base, args.footprint_users * 3, args.footprint_users, 1, logs, False
            )
        if "scale" in only:
            console.print(f"scale-out: {args.scale_events:,} events, 1 then 2 workers …")
            users = max(1000, args.scale_events // 10)
            one = await ingest(base, args.scale_events, users, 1, logs, False)
            two = await ingest(base, args.scale_events, users, 2, logs, False)
            results["scale_out"] = {
                "one_worker_per_s": one["scorer_per_s"],
                "two_workers_per_s": two["scorer_per_s"],
                "speedup": round(two["scorer_per_s"] / one["scorer_per_s"], 2),
            }

        if "fold" in only:
            fold_events = max(1000, args.events * 2 // 5)  # 200,000 of the default 500,000
            fold_users = max(100, fold_events // 10)  # not --users: 10 events a user
            console.print(
                f"fold alone: {fold_events:,} events over {fold_users:,} users (2/5 of "
                f"--events), {args.repeat} round(s) …"
            )
            results["fold"] = await fold_cpu(base, fold_events, fold_users, args.repeat)
        if "soak" in only:
            console.print(
                f"soak: {args.soak_minutes:.0f} min at {args.event_rate:,.0f} events/s and "
                f"{args.request_rate:,.0f} requests/s over {args.soak_users:,} users …"
            )
            results["soak"] = await soak(
                base, args.soak_minutes, args.event_rate, args.request_rate, args.soak_users, logs
            )

    asyncio.run(run())
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out / f"bench-{stamp}.json"
    path.write_text(json.dumps(results, indent=2))
    console.print(render(results))
    console.print(f"results: {path}")


def fold_setting(value: str) -> int | str:
    """``--folds``: ``auto``, or a count of at least 1."""
    if value == "auto":
        return value
    try:
        count = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("a number or auto") from None
    if count < 1:
        raise argparse.ArgumentTypeError("at least 1")
    return count


def render(results: dict[str, Any]) -> Table:
    """The results as a table."""
    table = Table("scenario", "figure", "value", title="creditline benchmark")
    latencies = [f"latency_{layout}" for layout in LAYOUTS]
    scenarios = (
        "ingest",
        "ingest_tenth",
        *latencies,
        "overload",
        "freshness",
        "footprint",
        "scale_out",
        "soak",
        "fold",
    )
    for scenario in scenarios:
        for key, value in (results.get(scenario) or {}).items():
            if key == "rss_samples":
                continue  # in the JSON
            if key == "repeated":
                for name, over in value.items():
                    table.add_row(scenario, f"repeated: {name}", _spread_cell(over))
                continue
            if isinstance(value, dict):
                value = ", ".join(f"{k} {v}" for k, v in value.items())
            table.add_row(scenario, key, str(value))
    return table


def rounds(index: int, repeat: int) -> str:
    """Which run of several this is, for the progress lines ("" for a single run)."""
    return f", run {index + 1} of {repeat}" if repeat > 1 else ""


def _spread_cell(over: Any) -> str:
    """A figure across runs: median (least–most): every run's value."""
    if not isinstance(over, dict):
        return str(over)  # the run count
    values = ", ".join(str(v) for v in over["runs"])
    if "median" not in over:
        return values
    return f"median {over['median']} ({over['min']}–{over['max']}): {values}"


if __name__ == "__main__":
    main()

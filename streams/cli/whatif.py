"""``creditline what-if``: what a candidate policy or scorecard would have answered to the loan
requests of a window, against what the live configuration answers (docs/what-if.md)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from streams.cli.root import (
    EXIT_USAGE,
    PANEL_OPS,
    JsonOption,
    app,
    console,
    err,
    fail,
    progress_bar,
    run,
)
from streams.settings import get_settings

#: The window when neither --since nor --from is given.
DEFAULT_SINCE = "30d"
#: Flipped requests printed on the terminal (--json and the report list up to --flipped-limit).
_TERMINAL_FLIPS = 20


def _window(since: str | None, start: str | None, end: str | None) -> Any:
    from streams.cli.root import parse_instant
    from streams.core.whatif import Window

    if since is not None and (start is not None or end is not None):
        fail("give either --since or --from/--to, not both", EXIT_USAGE)
    if end is not None and start is None:
        fail("--to needs --from", EXIT_USAGE)
    now = datetime.now(UTC)
    if start is not None:
        window = Window(parse_instant(start, "--from"), parse_instant(end, "--to") if end else now)
    else:
        window = Window(parse_instant(since or DEFAULT_SINCE, "--since"), now)
    if window.start >= window.end:
        fail(
            f"the window is empty: {window.start.isoformat()} is not before "
            f"{window.end.isoformat()}",
            EXIT_USAGE,
        )
    return window


def _read(path: Path, kind: str) -> Any:
    from streams.core.policy import InvalidPolicy, parse_policy
    from streams.core.scorecard import InvalidScorecard, parse_scorecard

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}", EXIT_USAGE)
    try:
        return parse_policy(text) if kind == "policy" else parse_scorecard(text)
    except (InvalidPolicy, InvalidScorecard) as exc:
        fail(f"{path} is not a valid {kind}:\n{exc}", EXIT_USAGE)


@app.command("what-if", rich_help_panel=PANEL_OPS)
def what_if(
    policy: Annotated[
        Path | None, typer.Option("--policy", help="A candidate policy (YAML or JSON).")
    ] = None,
    scorecard: Annotated[
        Path | None, typer.Option("--scorecard", help="A candidate scorecard (YAML or JSON).")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help=f"The window: requests judged since a duration ago (30m, 2h, 7d) or an RFC 3339 "
            f"time, until now (default {DEFAULT_SINCE}).",
        ),
    ] = None,
    start: Annotated[
        str | None, typer.Option("--from", help="Start of the window (RFC 3339), inclusive.")
    ] = None,
    end: Annotated[
        str | None,
        typer.Option("--to", help="End of the window (RFC 3339), exclusive; default now."),
    ] = None,
    report_dir: Annotated[
        Path | None,
        typer.Option("--report", help="Write report.json, report.md and chart.png here."),
    ] = None,
    flipped_limit: Annotated[
        int, typer.Option("--flipped-limit", min=0, help="Flipped requests listed at most.")
    ] = 100,
    as_json: JsonOption = False,
) -> None:
    """Re-answer every loan request of a window with the **live** configuration (the policy
    and scorecard history on the policy topic, as the workers used it) and a **candidate**
    (the given policy and/or scorecard in force for all time), through the worker's own code;
    report the decisions that flip, approvals and expected loss by segment before and after,
    and the lines whose status would change."""
    from streams.core.whatif_render import report_json
    from streams.runtime.jobs import run_what_if
    from streams.runtime.tuning import tune_garbage_collector

    if policy is None and scorecard is None:
        fail("say what the candidate is: --policy FILE, --scorecard FILE or both", EXIT_USAGE)
    window = _window(since, start, end)
    candidate_policy = _read(policy, "policy") if policy is not None else None
    candidate_card = _read(scorecard, "scorecard") if scorecard is not None else None
    tune_garbage_collector()
    report = run(
        with_progress(
            lambda on_progress: run_what_if(
                get_settings(),
                window,
                candidate_policy,
                candidate_card,
                flipped_limit=flipped_limit,
                on_progress=on_progress,
            ),
            quiet=as_json,
        )
    )
    doc = report_json(report)
    if report_dir is not None:
        _write_report(report, doc, report_dir, quiet=as_json)
    if as_json:
        console.print_json(json.dumps(doc))
        return
    _print(report)


async def with_progress(job: Any, *, quiet: bool) -> Any:
    """Run ``job(on_progress)`` under a progress bar on stderr (none when ``quiet``)."""
    with progress_bar("/s", quiet=quiet) as progress:
        task = progress.add_task("reading the topics", total=None, rate="-")
        started = {"reading": time.monotonic(), "answering": time.monotonic()}

        def on_progress(phase: str, done: int, total: int | None) -> None:
            if phase == "answering" and done == 0:
                started["answering"] = time.monotonic()
                progress.reset(task, total=total, description="re-answering requests")
            rate = done / max(1e-6, time.monotonic() - started[phase])
            progress.update(task, completed=done, rate=f"{rate:,.0f}")

        return await job(on_progress)


#: The window the apply guard re-answers.
GUARD_WINDOW_DAYS = 7


def confirm_live(what: str, *, policy: Any = None, card: Any = None, yes: bool = False) -> None:
    """The guard of ``policy apply`` / ``scorecard apply`` without ``--shadow``: the what-if
    of the candidate over the last 7 days, then a confirmation. ``--yes`` (scripts) skips
    both; without a terminal to answer on, nothing is applied."""
    import sys
    from datetime import timedelta

    from streams.core.whatif_render import render_summary
    from streams.runtime.jobs import what_if_summary

    if yes:
        return
    report = run(
        with_progress(
            lambda on_progress: what_if_summary(
                get_settings(),
                policy,
                card,
                since=timedelta(days=GUARD_WINDOW_DAYS),
                on_progress=on_progress,
            ),
            quiet=not err.is_terminal,
        )
    )
    console.print(escape(render_summary(report)), soft_wrap=True)
    if not sys.stdin.isatty():
        fail(
            f"{what} not applied: confirm on a terminal, or pass --yes to apply without "
            "asking (see `creditline what-if` for the full comparison)",
            EXIT_USAGE,
        )
    if not typer.confirm(guard_question(what), default=False):
        fail(f"{what} not applied", 1)


def guard_question(what: str) -> str:
    """What the apply guard asks (typer adds `` [y/N]: ``)."""
    return f"Apply {what} live?"


def _print(report: Any) -> None:
    from streams.core.whatif import OUTCOMES
    from streams.core.whatif_render import render_summary

    console.print(
        f"[bold]live[/]: {escape(report.live)}\n[bold]candidate[/]: {escape(report.candidate)}",
        soft_wrap=True,
    )
    console.print(escape(render_summary(report)), soft_wrap=True)
    matrix = Table(
        "live \\ candidate", *(o.value for o in OUTCOMES), title="outcomes, live → candidate"
    )
    for a in OUTCOMES:
        counts = [(b, report.matrix[a, b]) for b in OUTCOMES]
        cells = [f"[bold red]{n}[/]" if a is not b and n else str(n) for b, n in counts]
        matrix.add_row(a.value, *cells)
    console.print(matrix)
    segments = Table(
        "segment",
        "requests",
        "approvals",
        "approved amount",
        "mean PD",
        "expected loss",
        "EL / approval",
        title="by segment, before → after",
    )
    rows = [*report.by_segment.items(), ("all", report.totals)]
    for name, (b, a) in rows:
        segments.add_row(
            escape(name),
            _arrow(b.requests, a.requests),
            _arrow(b.approvals, a.approvals),
            _arrow(_money(b.approved_amount), _money(a.approved_amount)),
            _arrow(_pd(b.mean_pd), _pd(a.mean_pd)),
            _arrow(_money(b.expected_loss), _money(a.expected_loss)),
            _arrow(_money(b.mean_expected_loss), _money(a.mean_expected_loss)),
        )
    console.print(segments)
    console.print(f"decisions overriding the displayed status: {_arrow(*report.overrides)}")
    if report.status_changes:
        lines = Table("from", "to", "users", title="line status at the end of the window")
        for (a, b), n in report.status_changes.items():
            lines.add_row(a, b, str(n))
        console.print(lines)
    else:
        console.print(f"no line of the {report.lines} users would end the window in another status")
    if report.flips:
        flips = Table("request", "user", "judged at", "live", "candidate", title="flipped requests")
        for f in report.flips[:_TERMINAL_FLIPS]:
            flips.add_row(
                escape(f.request_id),
                escape(f.user_id),
                f.evaluated_at.isoformat() if f.evaluated_at else "-",
                f"{f.before.value} {_money(f.amount_before)}",
                f"{f.after.value} {_money(f.amount_after)}",
            )
        console.print(flips)
        if report.flipped > _TERMINAL_FLIPS:
            console.print(f"… and {report.flipped - _TERMINAL_FLIPS} more (--json lists them)")
    p = report.published
    console.print(
        f"the live side equals {p.matching} of the {p.found} published decisions found"
        + (f"; {p.differing} differ (creditline explain tells why)" if p.differing else "")
        + (f"; {p.environmental} were environmental (not compared)" if p.environmental else "")
    )


def _arrow(before: object, after: object) -> str:
    return f"{before} → {after}" if before != after else str(before)


def _money(value: Any) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _pd(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def _write_report(report: Any, doc: dict[str, Any], directory: Path, *, quiet: bool) -> None:
    """report.json, report.md and chart.png (the chart needs matplotlib: the model extra)."""
    from streams.core.whatif_render import report_markdown

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    (directory / "report.md").write_text(report_markdown(report), encoding="utf-8")
    try:
        _chart(report, directory / "chart.png")
    except ImportError:
        err.print(
            "matplotlib is missing (the model extra): report.json and report.md written, "
            "no chart.png",
            soft_wrap=True,
        )
        return
    if not quiet:
        err.print(f"report written to {escape(str(directory))}", soft_wrap=True)


def _chart(report: Any, path: Path) -> None:
    """Approved amount and expected loss by segment, before and after, as bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [*report.by_segment, "all"]
    pairs = [*report.by_segment.values(), report.totals]
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    width = 0.38
    xs = range(len(names))
    for ax, measure, title in (
        (axes[0], "approved_amount", "approved amount"),
        (axes[1], "expected_loss", "expected loss (PD × approved amount)"),
    ):
        before = [float(getattr(b, measure)) for b, _ in pairs]
        after = [float(getattr(a, measure)) for _, a in pairs]
        ax.bar([x - width / 2 for x in xs], before, width, label="live", color="#4c72b0")
        ax.bar([x + width / 2 for x in xs], after, width, label="candidate", color="#dd8452")
        ax.set_xticks(list(xs), names, rotation=20, ha="right")
        ax.set_title(title)
        ax.margins(y=0.25)  # room for the legend above the bars
        ax.legend(loc="upper left", ncols=2)
    start, end = report.window.start, report.window.end
    figure.suptitle(
        f"what-if {start:%Y-%m-%d %H:%M} → {end:%Y-%m-%d %H:%M} UTC: {report.requests} requests, "
        f"{report.flipped} flipped"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)

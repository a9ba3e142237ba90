"""A user's state and the decisions: inspect, explain, replay."""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from streams.settings import get_settings

if TYPE_CHECKING:
    pass
from streams.cli.root import (
    JsonOption,
    app,
    console,
    fail,
    parse_instant,
    plain,
    policy_timeline,
    progress_bar,
    run,
)


@app.command(rich_help_panel="State and decisions")
def inspect(
    user: Annotated[str, typer.Argument(help="The user id.")],
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="RFC 3339 time with an offset, now, yesterday, or a duration ago (30m, 2h, "
            "7d); default now.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Print a user's standing at a moment: features, points per characteristic, score and
    probability of default, segment, limit, status (with its history), reasons and, for a
    closed or frozen line, the path back — what a decision at that moment would use."""
    from streams.adapters.redis.store import RedisStore
    from streams.core.answer import way_back_of
    from streams.core.decision import status_reasons
    from streams.core.timeline import at_time, needs_ledger_at, standing
    from streams.metrics import Metrics
    from streams.service.shell import decode_limits

    settings = get_settings()
    at = parse_instant(as_of, "--as-of") if as_of else datetime.now(UTC)
    horizon = decode_limits(settings).horizon

    async def load() -> Any:
        store = RedisStore.connect(settings, Metrics())
        try:
            stored = await store.read_user(user)
            ledger = None
            if needs_ledger_at(stored.checkpoint, stored.latest_event_at, at, horizon):
                ledger = await store.read_ledger(user)
            return stored, ledger, await policy_timeline(settings)
        finally:
            await store.close()

    stored, ledger, timelines = run(load())
    checkpoint = at_time(stored.checkpoint, ledger, timelines, at, horizon)
    a = standing(checkpoint, timelines)
    if a is None or checkpoint.state is None:
        fail(f"no state for user {user} at {at.isoformat()}")
        return
    policy = timelines.at(a.features.at)
    doc: dict[str, Any] = {
        "user_id": user,
        "as_of": at.isoformat(),
        "reviewed_at": a.features.at.isoformat(),
        "next_review": (
            checkpoint.trajectory.next_review.isoformat()
            if checkpoint.trajectory.next_review
            else None
        ),
        "policy_version": a.policy_version,
        "scorecard_version": a.scorecard_version,
        "score": a.score,
        "pd": round(a.pd, 6),
        "pd_horizon_months": a.card.scaling.horizon_months,
        "status": a.status.value,
        "status_since": a.line.since.isoformat(),
        "status_history": [
            {"status": c.status.value, "since": c.since.isoformat(), "settled": c.settled}
            for c in checkpoint.trajectory.changes
        ],
        "segment": a.segment,
        "exception": a.exception.code if a.exception else None,
        "thresholds": {
            "close_below": a.thresholds.close_below,
            "reopen_at": a.thresholds.reopen_at,
        },
        "reasons": [r.model_dump() for r in status_reasons(a, policy, settings.reason_language)],
        "credit_limit": str(a.credit_limit),
        "available_limit": str(a.available_limit),
        "score_as_of": a.score_as_of.isoformat(),
        "points": dict(a.points),
        "features": {
            f.name: plain(getattr(a.features, f.name))
            for f in dataclasses.fields(a.features)
            if f.name not in ("last_delinquency_at",)
        },
        "events_applied": checkpoint.state.events_applied,
        "path_back": None,
    }
    if a.status.value != "open":
        found = way_back_of(checkpoint, a, settings.reason_language)
        doc["path_back"] = found.model_dump(mode="json") if found is not None else None
    if as_json:
        console.print_json(json.dumps(doc))
        return
    table = Table(
        "characteristic",
        "points",
        title=f"{user}: score {a.score} (PD {a.pd:.1%}), {a.status.value} since "
        f"{a.line.since:%Y-%m-%d}, segment {a.segment}, limit {a.credit_limit} "
        f"({a.available_limit} available), policy {a.policy_version}, scorecard "
        f"{a.scorecard_version}, reviewed {a.features.at:%Y-%m-%d %H:%M}",
    )
    for name, points in a.points.items():
        table.add_row(name, str(points))
    console.print(table)
    features = Table("feature", "value")
    for name, value in doc["features"].items():
        features.add_row(name, str(value))
    console.print(features)
    history = Table("status", "since", title="status history (event time)")
    for change in doc["status_history"]:
        history.add_row(change["status"], change["since"])
    console.print(history)
    for r in doc["reasons"]:
        console.print(f"[bold]{r['code']}[/] {r['text']}")
    way_back = doc["path_back"]
    if way_back:
        console.print(f"[bold]Path back[/] to {way_back['target_score']}:")
        for option in way_back["options"]:
            console.print(f"  → {option['text']} (score {option['score']})", markup=False)
        if not way_back["options"]:
            console.print(
                "  the score already qualifies: the line is held by a freeze or the dwell"
            )


@app.command(rich_help_panel="State and decisions")
def explain(
    request_ids: Annotated[
        list[str] | None, typer.Argument(help="Request ids (none with --all).")
    ] = None,
    everything: Annotated[
        bool, typer.Option("--all", help="Every decision on the decisions topic.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Re-derive published decisions from the logs (the user's events and the policy history,
    as of the instant each was judged at), say whether each equals the published one field
    by field, and show the review-by-review trajectory that led to it. Exit 1 on a mismatch."""
    from rich.markup import escape

    from streams.runtime.jobs import run_explain

    if not request_ids and not everything:
        fail("say which decisions: REQUEST_ID ... or --all", 2)
    settings = get_settings()
    wanted = None if everything else set(request_ids or ())
    results = run(run_explain(settings, wanted))
    if wanted is not None:
        missing = wanted - {r.request_id for r in results}
        if missing:
            fail(f"no published decision for {sorted(missing)}")
    mismatched = [r for r in results if r.rederived is not None and not r.matches]
    if as_json:
        console.print_json(
            json.dumps(
                {
                    "decisions": len(results),
                    "matching": sum(r.matches for r in results),
                    "mismatching": len(mismatched),
                    "not_rederivable": sum(r.rederived is None for r in results),
                    "explanations": [
                        {
                            "request_id": r.request_id,
                            "matches": r.matches,
                            "differences": r.differences,
                            "note": r.note,
                            "events": r.events,
                            "late_events": r.late_events,
                            "published": r.published.model_dump(mode="json"),
                            "rederived": r.rederived.model_dump(mode="json")
                            if r.rederived
                            else None,
                            "trajectory": [
                                {
                                    "at": step.at.isoformat(),
                                    "score": step.score,
                                    "segment": step.segment,
                                    "status": step.status.status.value,
                                    "status_since": step.status.since.isoformat(),
                                    "policy_version": step.policy_version,
                                    "events": step.events,
                                }
                                for step in r.trace
                            ],
                        }
                        for r in results
                    ],
                }
            )
        )
    else:
        for r in results if wanted is not None else mismatched:
            verdict = "[green]matches[/]" if r.matches else "[red]differs[/]"
            if r.rederived is None:
                verdict = f"[yellow]not re-derivable[/]: {escape(r.note)}"
            console.print(
                f"[bold]{escape(r.request_id)}[/] ({escape(r.published.user_id)}): {verdict}; "
                f"{r.events} events up to {r.published.evaluated_at}",
                soft_wrap=True,
            )
            if r.rederived is not None:
                table = Table("field", "published", "re-derived", "")
                a = r.published.model_dump(mode="json")
                b = r.rederived.model_dump(mode="json")
                for name in a:
                    same = a[name] == b.get(name)
                    table.add_row(
                        name,
                        escape(json.dumps(a[name], ensure_ascii=False)),
                        escape(json.dumps(b.get(name), ensure_ascii=False)),
                        "" if same else "[red]≠[/]",
                    )
                console.print(table)
            if r.late_events:
                console.print(
                    f"{len(r.late_events)} events up to that instant arrived after the decision "
                    "(its answer would be restated today)"
                )
            if r.trace:
                steps = Table("review at", "score", "segment", "status", "since", "policy")
                for step in r.trace[-30:]:
                    steps.add_row(
                        step.at.isoformat(),
                        str(step.score),
                        step.segment,
                        step.status.status.value,
                        step.status.since.isoformat(),
                        step.policy_version,
                    )
                console.print(steps)
        console.print(
            f"{len(results)} decisions: {sum(r.matches for r in results)} re-derived exactly, "
            f"{len(mismatched)} differ, {sum(r.rederived is None for r in results)} not "
            "re-derivable"
        )
    if mismatched:
        raise typer.Exit(1)


# ---- replay --------------------------------------------------------------------------------
@app.command(rich_help_panel="State and decisions")
def replay(
    rebuild: Annotated[
        bool,
        typer.Option(
            "--rebuild",
            help="Delete every creditline key in Redis first (stop the workers): after an "
            "upgrade to a new key layout, or to start over.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Rebuild every user's state in Redis from the input topics (e.g. after Redis lost its
    data). Idempotent and safe while workers run; announces nothing again."""
    from streams.runtime.jobs import run_replay
    from streams.runtime.tuning import tune_garbage_collector

    tune_garbage_collector()
    settings = get_settings()
    with progress_bar(" records/s", quiet=as_json) as progress:
        task = progress.add_task("replaying", total=None, rate="-")
        started = time.monotonic()

        def on_progress(done: int) -> None:
            rate = done / max(1e-6, time.monotonic() - started)
            progress.update(task, completed=done, rate=f"{rate:,.0f}")

        async def main() -> Any:
            return await run_replay(
                settings,
                rebuild=rebuild,
                on_total=lambda total: progress.update(task, total=total),
                on_progress=on_progress,
            )

        report = run(main())
    summary = {
        "records": report.records,
        "applied": report.applied,
        "duplicate": report.duplicate,
        "rejected": report.rejected,
        "per_topic": report.per_topic,
        "decisions_restored": report.decisions_restored,
        "decisions_matching": report.decisions_matching,
        "decisions_differing": report.decisions_differing,
        "seconds": round(time.monotonic() - started, 3),
    }
    if as_json:
        console.print_json(json.dumps(summary))
    else:
        console.print(
            f"replayed {report.records} records: {report.applied} applied, "
            f"{report.duplicate} already present, {report.rejected} rejected; "
            f"{report.decisions_restored} published decisions remembered again, "
            f"{report.decisions_matching} re-derived exactly, {report.decisions_differing} "
            "differ"
        )


# ---- dead letters --------------------------------------------------------------------------
# Everything read from the dead-letter topic is a producer's: it is printed through
# `_inert` (control characters escaped, never interpreted as markup), and JSON output is
# ASCII (`ensure_ascii`: bidi overrides and C1 controls as \u escapes, not raw).

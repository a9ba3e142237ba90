"""A candidate in shadow: status (the running comparison), promote, stop. Candidates are
installed with ``policy apply FILE --shadow`` and ``scorecard apply FILE --shadow``."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from streams.cli.root import PANEL_OPS, JsonOption, app, console, fail, parse_instant, run
from streams.settings import get_settings

shadow_app = typer.Typer(
    help="A candidate policy or scorecard answering beside the live one, deciding nothing.",
    no_args_is_help=True,
)
app.add_typer(shadow_app, name="shadow", rich_help_panel=PANEL_OPS)

ByOption = Annotated[str | None, typer.Option("--by", help="Who does it (audit).")]
CommentOption = Annotated[str | None, typer.Option(help="Why (audit).")]


def describe(candidate: Any) -> str:
    """One line: what is in shadow, since when, by whom."""
    by = f" by {candidate.installed_by}" if candidate.installed_by else ""
    return f"in shadow: {candidate.label}, since {candidate.since.isoformat()}{by}"


@shadow_app.command("status")
def shadow_status(as_json: JsonOption = False) -> None:
    """What is in shadow and how its answers compare with the live ones since it was
    installed: outcomes from → to, disagreements, approved amounts."""
    from streams.runtime.jobs import run_shadow_status

    candidate, comparison = run(run_shadow_status(get_settings()))
    if as_json:
        doc = comparison.to_json()
        doc["candidate"] = (
            None
            if candidate is None
            else {
                "policy_version": candidate.policy.version if candidate.policy else None,
                "scorecard_version": candidate.card.version if candidate.card else None,
                "since": candidate.since.isoformat(),
                "installed_by": candidate.installed_by,
                "comment": candidate.comment,
            }
        )
        console.print_json(json.dumps(doc))
        return
    if candidate is None:
        console.print("nothing in shadow (`policy apply FILE --shadow` installs a candidate)")
        return
    console.print(describe(candidate))
    summary = comparison.to_json()
    table = Table("live → candidate", "requests", title=f"{comparison.pairs:,} requests compared")
    for row in summary["outcomes"]:
        marker = "" if row["live"] == row["shadow"] else "  ≠"
        table.add_row(f"{row['live']} → {row['shadow']}{marker}", f"{row['requests']:,}")
    console.print(table)
    console.print(comparison_line(comparison))


def comparison_line(comparison: Any) -> str:
    """The line under the table: disagreements and the approved amounts."""
    amounts = comparison.to_json()["approved_amount"]
    return (
        f"disagreements: {comparison.disagreements:,}; approved amount live "
        f"{amounts['live']}, candidate {amounts['shadow']} "
        f"(difference {amounts['difference']})"
        + (f"; {comparison.unpaired:,} not yet paired" if comparison.unpaired else "")
    )


@shadow_app.command("promote")
def shadow_promote(
    by: ByOption = None,
    comment: CommentOption = None,
    effective_from: Annotated[
        str | None,
        typer.Option(
            "--effective-from",
            help="When the candidate decides (default: CREDITLINE_POLICY_ACTIVATION_SECONDS "
            "from now).",
        ),
    ] = None,
) -> None:
    """Make the candidate live: publish its policy and/or scorecard as live versions (audited
    like `apply`), then stop the shadow. Requests from the instant it takes effect on get its
    answers."""
    from streams.adapters.kafka.policies import (
        publish_policy,
        publish_scorecard,
        read_policy_history,
        shadow_candidate,
        stop_shadow,
    )

    settings = get_settings()
    candidate = shadow_candidate(run(read_policy_history(settings)))
    if candidate is None:
        fail("nothing in shadow to promote")
    effective = parse_instant(effective_from, "--effective-from") if effective_from else None
    note = comment or f"promoted from shadow ({candidate.label})"
    if candidate.policy is not None:
        published = run(publish_policy(settings, candidate.policy, by, note, effective))
        effective = effective or published.effective_from
        console.print(
            f"policy {candidate.policy.version} live from {published.effective_from.isoformat()}"
        )
    if candidate.card is not None:
        published = run(publish_scorecard(settings, candidate.card, by, note, effective))
        console.print(
            f"scorecard {candidate.card.version} live from {published.effective_from.isoformat()}"
        )
    run(stop_shadow(settings, by, f"promoted: {candidate.label}"))
    console.print("shadow stopped")


@shadow_app.command("stop")
def shadow_stop(by: ByOption = None, comment: CommentOption = None) -> None:
    """Remove the candidate: nothing is answered in shadow any more."""
    from streams.adapters.kafka.policies import read_policy_history, shadow_candidate, stop_shadow

    settings = get_settings()
    candidate = shadow_candidate(run(read_policy_history(settings)))
    if candidate is None:
        console.print("nothing in shadow")
        return
    run(stop_shadow(settings, by, comment))
    console.print(f"stopped {candidate.label}")

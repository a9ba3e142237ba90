"""The scorecard: validate, apply (at an instant), show, history; and the modelling commands
(simulate, dataset, fit, evaluate), which fit and validate cards offline (docs/scorecard.md).

``fit`` needs the ``model`` extra (optbinning, scikit-learn, matplotlib), installed by
``make install``; the worker never does."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from streams.cli.root import (
    EXIT_USAGE,
    PANEL_OPS,
    JsonOption,
    app,
    console,
    fail,
    invalid,
    parse_instant,
    policy_timeline,
    report_published,
    run,
)
from streams.settings import get_settings

scorecard_app = typer.Typer(
    help="The scorecard: publish a version, see which one scores, fit and validate cards.",
    no_args_is_help=True,
)
app.add_typer(scorecard_app, name="scorecard", rich_help_panel=PANEL_OPS)

EventsOption = Annotated[
    Path,
    typer.Option(
        "--events",
        help='JSON Lines of {"topic": "credit.repayments" | "credit.spending" | '
        '"credit.assets", "value": <the event as on the wire>}.',
        exists=True,
        dir_okay=False,
    ),
]
LabelsOption = Annotated[
    Path,
    typer.Option(
        "--labels",
        help="CSV with the header user_id,as_of,bad (as_of RFC 3339 with an offset).",
        exists=True,
        dir_okay=False,
    ),
]


def _read_card(path: Path) -> Any:
    from streams.core.scorecard import InvalidScorecard, parse_scorecard

    try:
        return parse_scorecard(path.read_text(encoding="utf-8"))
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")
    except InvalidScorecard as exc:
        fail(f"{path} is not a valid scorecard; nothing was applied:\n{exc}")


def _modelling() -> Any:
    """The modelling pipeline, or a clear failure without the ``model`` extra."""
    try:
        from streams.modeling import pipeline
        from streams.modeling.fit import fit_scorecard  # noqa: F401  (needs optbinning)
    except ImportError as exc:
        fail(
            f"scorecard fitting needs the model extra ({exc.name} is missing): "
            "`make install`, or pip install 'creditline[model]'"
        )
    return pipeline


@scorecard_app.command("validate")
def scorecard_validate(
    file: Annotated[Path, typer.Argument(help="YAML or JSON scorecard.")],
) -> None:
    """Check a scorecard document without applying it."""
    card = _read_card(file)
    console.print(
        f"{file}: valid scorecard {card.version} ({card.kind}, "
        f"{len(card.characteristics)} characteristics)"
    )


@scorecard_app.command("apply")
def scorecard_apply(
    file: Annotated[Path, typer.Argument(help="YAML or JSON scorecard.")],
    by: Annotated[str | None, typer.Option("--by", help="Who applies it (audit).")] = None,
    comment: Annotated[str | None, typer.Option(help="Why (audit).")] = None,
    effective_from: Annotated[
        str | None,
        typer.Option(
            "--effective-from",
            help="RFC 3339 time it starts scoring (default: CREDITLINE_POLICY_ACTIVATION_SECONDS "
            "from now). Never in the past.",
        ),
    ] = None,
    shadow: Annotated[
        bool,
        typer.Option(
            "--shadow",
            help="Install it in shadow instead: it scores every request beside the live card "
            "(decisions on the shadow topic), deciding nothing, until `shadow promote`.",
        ),
    ] = False,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes",
            "-y",
            help="Apply without the what-if of the last 7 days and the confirmation (for scripts).",
        ),
    ] = False,
) -> None:
    """Validate a scorecard and publish it on the policy topic; running workers score with it,
    without a restart, from the instant it takes effect."""
    from streams.adapters.kafka.policies import publish_scorecard, publish_shadow
    from streams.core.scorecard import InvalidScorecard

    card = _read_card(file)
    if shadow:
        try:
            run(publish_shadow(get_settings(), card=card, applied_by=by, comment=comment))
        except InvalidScorecard as exc:
            fail(str(exc))
        console.print(
            f"scorecard {card.version} in shadow: compare with `creditline shadow status`, "
            "then `shadow promote` or `shadow stop`"
        )
        return
    effective = None
    if effective_from is not None:
        effective = parse_instant(effective_from, "--effective-from")
        if effective < datetime.now(UTC):
            fail("--effective-from is in the past: a scorecard cannot rewrite history", EXIT_USAGE)
    from streams.cli.whatif import confirm_live

    confirm_live(f"scorecard {card.version}", card=card, yes=yes)
    try:
        published = run(publish_scorecard(get_settings(), card, by, comment, effective))
    except InvalidScorecard as exc:
        fail(str(exc))
    report_published("scorecard", card.version, published)


@scorecard_app.command("show")
def scorecard_show(as_json: JsonOption = False) -> None:
    """Print the scorecard in force now (the latest one applied, else the shipped card)."""
    from streams.core.scorecard import scorecard_json, scorecard_yaml

    card = run(policy_timeline(get_settings())).card_at(datetime.now(UTC))
    if as_json:
        console.print_json(scorecard_json(card))
        return
    console.print(f"# scorecard in force: {card.version}")
    console.print(scorecard_yaml(card), markup=False)


@scorecard_app.command("history")
def scorecard_history(as_json: JsonOption = False) -> None:
    """Every scorecard version applied, oldest first, with who and when; rejected ones too."""
    from streams.adapters.kafka.policies import read_policy_history

    records = [
        r
        for r in run(read_policy_history(get_settings()))
        if r.kind == "scorecard" and not r.shadow
    ]
    rows = [
        {
            "offset": r.offset,
            "version": r.version,
            "applied_at": r.applied_at.isoformat() if r.applied_at else None,
            "effective_from": r.effective_from.isoformat() if r.effective_from else None,
            "applied_by": r.applied_by,
            "comment": r.comment,
            "valid": r.valid,
            "problems": list(r.problems),
        }
        for r in records
    ]
    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = Table("offset", "version", "applied at", "in effect from", "by", "comment", "valid")
    for row in rows:
        table.add_row(
            *(str(row[k] or "") for k in ("offset", "version", "applied_at", "effective_from")),
            str(row["applied_by"] or ""),
            str(row["comment"] or ""),
            "yes" if row["valid"] else "[red]no[/]",
        )
    console.print(table if rows else "no scorecard applied yet: the shipped card scores")


# ---- modelling -----------------------------------------------------------------------------
def _months(text: str) -> int:
    found = re.fullmatch(r"(\d{1,3})m", text)
    if not found or not 1 <= int(found.group(1)) <= 60:
        fail(f"--performance-window {text!r}: expected months like 12m (1m to 60m)", EXIT_USAGE)
    return int(found.group(1))


@scorecard_app.command("dataset")
def scorecard_dataset(
    out: Annotated[Path, typer.Option("--out", help="Directory for events.jsonl, labels.csv.")],
    performance_window: Annotated[
        str, typer.Option("--performance-window", help="Months after each point, e.g. 12m.")
    ] = "12m",
    bad_dpd: Annotated[
        int, typer.Option("--bad-dpd", min=1, help="Days past due that make a point bad.")
    ] = 90,
    points: Annotated[
        str,
        typer.Option(
            "--points", help="Observation points: the published decisions, or month starts."
        ),
    ] = "decisions",
) -> None:
    """Labelled histories from what the system saw: observation points (decisions or month
    starts) labelled by whether the user reached --bad-dpd within the window after; immature
    points left out. The files feed `scorecard fit` and `scorecard evaluate`."""
    from streams.core.labels import Outcome
    from streams.modeling.dataset import write_events, write_labels
    from streams.runtime.jobs import run_scorecard_dataset

    if points not in ("decisions", "monthly"):
        fail(f"--points {points!r}: expected decisions or monthly", EXIT_USAGE)
    outcome = Outcome(window_months=_months(performance_window), bad_dpd=bad_dpd)
    labelled = run(run_scorecard_dataset(get_settings(), outcome, points))  # type: ignore[arg-type]
    out.mkdir(parents=True, exist_ok=True)
    events = write_events(out / "events.jsonl", labelled.events)
    labels = write_labels(out / "labels.csv", labelled.labels)
    bad = sum(label.bad for label in labelled.labels)
    console.print(
        f"{labels:,} labelled points ({bad:,} bad) and {events:,} events of their users "
        f"written to {out}"
    )


@scorecard_app.command("simulate")
def scorecard_simulate(
    events: Annotated[Path, typer.Option("--events", help="Events file to write.")],
    labels: Annotated[Path, typer.Option("--labels", help="Labels file to write.")],
    users: Annotated[int, typer.Option(min=1, help="Users to simulate.")] = 2000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 1,
    risk_shift: Annotated[
        float, typer.Option(help="Shift of latent risk, in standard deviations.")
    ] = 0.0,
) -> None:
    """A simulated population that defaults (docs/scorecard.md): events and labels."""
    from streams.modeling import pipeline
    from streams.modeling.population import PopulationSpec

    spec = PopulationSpec(users=users, seed=seed, risk_shift=risk_shift)
    labelled = pipeline.simulate(spec, events, labels)
    console.print(
        f"{len(labelled.events):,} events, {len(labelled.labels):,} labels, "
        f"bad rate {labelled.bad_rate:.3f}"
    )


@scorecard_app.command("fit")
def scorecard_fit(
    events: EventsOption,
    labels: LabelsOption,
    out: Annotated[Path, typer.Option("--out", help="The fitted card (YAML) to write.")],
    report: Annotated[
        Path | None, typer.Option("--report", help="Directory for the report and plots.")
    ] = None,
    version: Annotated[
        str | None, typer.Option(help="The card's version (default: fitted-<today>).")
    ] = None,
    validation_events: Annotated[
        Path | None, typer.Option(help="Held-out events to validate on.")
    ] = None,
    validation_labels: Annotated[
        Path | None, typer.Option(help="Held-out labels to validate on.")
    ] = None,
    compare: Annotated[
        list[Path] | None, typer.Option(help="Another card to evaluate on the same data.")
    ] = None,
) -> None:
    """Fit a scorecard to labelled histories (point-in-time features from the worker's own
    fold; monotonic bins where the business direction is known; missing never above the
    worst bin) and write it with its report (Markdown, JSON, ROC/KS/calibration plots)."""
    from streams.modeling.dataset import DatasetError

    pipeline = _modelling()
    if (validation_events is None) != (validation_labels is None):
        fail("--validation-events and --validation-labels go together", EXIT_USAGE)
    validation = (
        (validation_events, validation_labels)
        if validation_events is not None and validation_labels is not None
        else None
    )
    name = version or f"fitted-{datetime.now(UTC):%Y.%m.%d}"
    try:
        fitted = pipeline.fit(
            events, labels, name, out, report, validation=validation, compare=compare
        )
    except DatasetError as exc:
        invalid("dataset", exc)
    except ValueError as exc:
        fail(f"cannot fit a scorecard on this data: {exc}")
    figures = fitted.report.evaluations
    shown = figures.get("validation") or figures["training"]
    summary = shown.summary()
    console.print(
        f"wrote {out} ({fitted.card.version}, {len(fitted.card.characteristics)} "
        f"characteristics): AUC {summary['auc']:.3f}, KS {summary['ks']:.3f} on "
        f"{'validation' if 'validation' in figures else 'training'} data"
        + (f"; report in {report}" if report else "")
    )


@scorecard_app.command("evaluate")
def scorecard_evaluate(
    events: EventsOption,
    labels: LabelsOption,
    scorecard: Annotated[
        Path | None,
        typer.Option("--scorecard", help="The card to evaluate (default: the shipped card)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Discrimination and calibration of a scorecard on labelled histories: AUC, Gini, KS,
    Brier, rows, bad rate, score deciles and calibration."""
    from streams.core.scorecard import load_default_scorecard
    from streams.modeling.dataset import DatasetError, load_dataset
    from streams.modeling.evaluate import evaluate_card

    card = _read_card(scorecard) if scorecard is not None else load_default_scorecard()
    try:
        data = load_dataset(events, labels)
    except DatasetError as exc:
        invalid("dataset", exc)
    if not data.bad or all(data.bad) or not any(data.bad):
        fail("the labels need both good and bad rows to evaluate a scorecard")
    evaluation = evaluate_card(card, data, str(events))
    summary = evaluation.summary()
    if as_json:
        console.print_json(json.dumps({"scorecard_version": card.version, **summary}))
        return
    table = Table("scorecard", "rows", "bad rate", "AUC", "Gini", "KS", "Brier")
    table.add_row(
        card.version,
        f"{summary['n']:,}",
        f"{summary['bad_rate']:.1%}",
        f"{summary['auc']:.3f}",
        f"{summary['gini']:.3f}",
        f"{summary['ks']:.3f}",
        f"{summary['brier']:.4f}",
    )
    console.print(table)

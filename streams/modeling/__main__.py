"""``python -m streams.modeling``: simulate, dataset, fit, evaluate, expert, ship, docs.

A stand-in until ``creditline scorecard …`` wraps the same functions
(:mod:`streams.modeling.pipeline`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from streams.modeling.population import PopulationSpec


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m streams.modeling", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    simulate = commands.add_parser("simulate", help="a population that defaults: events + labels")
    simulate.add_argument("--users", type=int, default=2000)
    simulate.add_argument("--seed", type=int, default=1)
    simulate.add_argument("--risk-shift", type=float, default=0.0)
    simulate.add_argument("--events", type=Path, required=True)
    simulate.add_argument("--labels", type=Path, required=True)

    dataset = commands.add_parser("dataset", help="point-in-time feature table (CSV)")
    dataset.add_argument("--events", type=Path, required=True)
    dataset.add_argument("--labels", type=Path, required=True)
    dataset.add_argument("--out", type=Path, required=True)

    fit = commands.add_parser("fit", help="fit a scorecard document and its report")
    fit.add_argument("--events", type=Path, required=True)
    fit.add_argument("--labels", type=Path, required=True)
    fit.add_argument("--version", required=True)
    fit.add_argument("--out", type=Path, required=True, help="the card (YAML)")
    fit.add_argument("--report", type=Path, help="directory for report.md/json and plots")
    fit.add_argument("--validation-events", type=Path)
    fit.add_argument("--validation-labels", type=Path)
    fit.add_argument("--compare", type=Path, action="append", help="another card to evaluate")

    evaluate = commands.add_parser("evaluate", help="a card's figures on labelled events")
    evaluate.add_argument("--card", type=Path, required=True)
    evaluate.add_argument("--events", type=Path, required=True)
    evaluate.add_argument("--labels", type=Path, required=True)
    evaluate.add_argument("--json", type=Path, help="write every figure as JSON")

    commands.add_parser("ship", help="refit the shipped cards, report and docs/scorecard.md")
    commands.add_parser("docs", help="refresh docs/scorecard.md from the shipped files")

    args = parser.parse_args(argv)
    from streams.modeling import pipeline

    if args.command == "simulate":
        spec = PopulationSpec(users=args.users, seed=args.seed, risk_shift=args.risk_shift)
        labelled = pipeline.simulate(spec, args.events, args.labels)
        print(
            f"{len(labelled.events):,} events, {len(labelled.labels):,} labels, "
            f"bad rate {labelled.bad_rate:.3f}"
        )
    elif args.command == "dataset":
        data = pipeline.dataset(args.events, args.labels, args.out)
        print(f"{len(data):,} rows with features, bad rate {data.bad_rate:.3f}")
    elif args.command == "fit":
        validation = None
        if args.validation_events or args.validation_labels:
            if not (args.validation_events and args.validation_labels):
                parser.error("--validation-events and --validation-labels go together")
            validation = (args.validation_events, args.validation_labels)
        fitted = pipeline.fit(
            args.events,
            args.labels,
            args.version,
            args.out,
            args.report,
            validation=validation,
            compare=args.compare,
        )
        for name, e in fitted.report.evaluations.items():
            print(json.dumps({"data": name, **e.summary()}))
    elif args.command == "evaluate":
        evaluation = pipeline.evaluate(args.card, args.events, args.labels, args.json)
        print(json.dumps(evaluation.summary()))
    elif args.command == "ship":
        report = pipeline.ship(Path.cwd())
        for name, e in report.evaluations.items():
            print(json.dumps({"data": name, **e.summary()}))
    else:
        from streams.modeling.docs import render_scorecard_doc

        doc = Path.cwd() / "docs" / "scorecard.md"
        doc.write_text(render_scorecard_doc(doc.read_text(encoding="utf-8"), Path.cwd()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The scorecard workflows as plain functions over paths and objects (what ``python -m
streams.modeling`` and, later, ``creditline scorecard …`` call).

* :func:`simulate` — a population that defaults, as events + labels files;
* :func:`dataset` — the point-in-time feature table of labelled events;
* :func:`fit` — a scorecard document and its report from labelled events;
* :func:`evaluate` — any card's validation figures on labelled events;
* :func:`ship` — the shipped cards (fitted and expert), their report and docs/scorecard.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.core.labels import DEFAULT_OUTCOME, LabelledSet, Outcome, label_points
from streams.core.scorecard import (
    ScorecardDocument,
    load_expert_scorecard,
    parse_scorecard,
    scorecard_yaml,
)
from streams.modeling.dataset import (
    Dataset,
    build_dataset,
    load_dataset,
    write_events,
    write_feature_table,
    write_labels,
)
from streams.modeling.evaluate import (
    Evaluation,
    calibrate_scaling,
    evaluate_card,
    with_training,
)
from streams.modeling.population import PopulationSpec, population_events

FITTED_VERSION = "fitted-2026.11.1"
EXPERT_VERSION = "expert-2026.11.1"
#: The development population the shipped card is fitted on, the one it is validated on,
#: and a riskier one (latent risk shifted by one standard deviation) for stability.
DEVELOPMENT = PopulationSpec(users=4000, seed=1)
VALIDATION = PopulationSpec(users=4000, seed=2)
SHIFTED = PopulationSpec(users=2000, seed=3, risk_shift=1.0)
FITTED_FILE = "scorecard-default.yaml"
EXPERT_FILE = "scorecard-expert.yaml"


def describe(spec: PopulationSpec) -> str:
    """A population in words (stored in the card's ``training.data``)."""
    shift = f", latent risk shifted by {spec.risk_shift:+g}" if spec.risk_shift else ""
    return (
        f"simulated population (streams.modeling.population) of {spec.users:,} users, seed "
        f"{spec.seed}{shift}, {spec.start:%Y-%m} to {spec.end:%Y-%m}; monthly observation points, "
        f"bad = {DEFAULT_OUTCOME.describe()}"
    )


def population_labels(spec: PopulationSpec, outcome: Outcome = DEFAULT_OUTCOME) -> LabelledSet:
    """A simulated population's events and labelled monthly observation points."""
    return label_points(population_events(spec), observed_until=spec.end, outcome=outcome)


def population_dataset(spec: PopulationSpec, outcome: Outcome = DEFAULT_OUTCOME) -> Dataset:
    """A simulated population as a dataset of point-in-time features."""
    labelled = population_labels(spec, outcome)
    return build_dataset(labelled.events, labelled.labels)


def simulate(spec: PopulationSpec, events_path: Path, labels_path: Path) -> LabelledSet:
    """Write a simulated population's events (JSON Lines) and labels (CSV)."""
    labelled = population_labels(spec)
    write_events(events_path, labelled.events)
    write_labels(labels_path, labelled.labels)
    return labelled


def dataset(events_path: Path, labels_path: Path, out_path: Path) -> Dataset:
    """Write the point-in-time feature table (CSV) of labelled events."""
    from typing import get_args

    from streams.core.policy import FeatureName

    data = load_dataset(events_path, labels_path)
    write_feature_table(out_path, data, list(get_args(FeatureName)))
    return data


def evaluate(
    card_path: Path, events_path: Path, labels_path: Path, json_path: Path | None = None
) -> Evaluation:
    """A card's validation figures on labelled events (JSON written when a path is given)."""
    card = parse_scorecard(card_path.read_text(encoding="utf-8"))
    evaluation = evaluate_card(card, load_dataset(events_path, labels_path), str(events_path))
    if json_path is not None:
        json_path.write_text(json.dumps(evaluation.to_json(), indent=2) + "\n", encoding="utf-8")
    return evaluation


@dataclass(frozen=True, slots=True)
class Fitted:
    """A fitted card with its report."""

    card: ScorecardDocument
    report: Any  # streams.modeling.report.Report (imported lazily: matplotlib)


def fit(
    events_path: Path,
    labels_path: Path,
    version: str,
    card_path: Path,
    report_dir: Path | None = None,
    *,
    validation: tuple[Path, Path] | None = None,
    compare: list[Path] | None = None,
) -> Fitted:
    """Fit a card to labelled events; write it (YAML) and its report (Markdown, JSON, plots).
    ``validation``: held-out events and labels to evaluate on (and the LR yardstick);
    ``compare``: other cards evaluated on the same data."""
    from streams.modeling.fit import FitConfig, baseline_auc, fit_scorecard
    from streams.modeling.report import Report, write_report

    train = load_dataset(events_path, labels_path)
    result = fit_scorecard(train, FitConfig(version=version, data=str(events_path)))
    held_out = load_dataset(*validation) if validation else None
    evaluations: dict[str, Evaluation] = {}
    baseline: dict[str, float] = {}
    if held_out is not None:
        evaluations["validation"] = evaluate_card(result.card, held_out, str(validation))
        baseline["validation"] = baseline_auc(train, held_out)
    evaluations["training"] = evaluate_card(result.card, train, str(events_path))
    for path in compare or []:
        other = parse_scorecard(path.read_text(encoding="utf-8"))
        data = held_out if held_out is not None else train
        evaluations[f"{other.version}"] = evaluate_card(other, data, str(path))
    card_path.write_text(scorecard_yaml(result.card), encoding="utf-8")
    report = Report(
        title=f"Scorecard {version}",
        card=result.card,
        evaluations=evaluations,
        iv=result.iv,
        dropped=result.dropped,
        coefficients=result.coefficients,
        baseline_auc=baseline,
    )
    if report_dir is not None:
        write_report(report_dir, report)
    return Fitted(result.card, report)


# ---- the shipped cards ---------------------------------------------------------------------
FITTED_HEADER = """The default scorecard of creditline, fitted from outcomes. Generated by
`python -m streams.modeling ship` (streams/modeling/pipeline.py): do not edit by hand.
Method, data, validation and limitations: docs/scorecard.md."""
EXPERT_HEADER = """The hand-set scorecard of policy default-2026.11.1 (policies scored with it
before scorecards were documents), its score -> PD mapping calibrated to the development population.
The comparison baseline (champion before the fitted card). Generated by
`python -m streams.modeling ship`: do not edit by hand. See docs/scorecard.md."""


def shipped_expert(development: Dataset) -> ScorecardDocument:
    """The hand-set card (the policy scorecard of ``default-2026.11.1``, kept as the document
    ``scorecard-expert.yaml`` since policies no longer score) with its score → PD mapping
    calibrated on ``development`` and its training distribution from it."""
    card = load_expert_scorecard().model_copy(update={"training": None})
    card = card.model_copy(update={"scaling": calibrate_scaling(card, development)})
    return with_training(card, development, describe(DEVELOPMENT))


def ship(root: Path) -> Any:
    """Fit the default card on :data:`DEVELOPMENT`, validate it on :data:`VALIDATION`
    against the expert card and the logistic-regression yardstick, and write both cards to
    ``root/streams/policies``, the report to ``root/docs/scorecard/`` and the generated
    sections of ``root/docs/scorecard.md``. Returns the report."""
    from streams.modeling.docs import render_scorecard_doc
    from streams.modeling.fit import FitConfig, baseline_auc, fit_scorecard
    from streams.modeling.report import Report, stable_json, write_report

    development = population_dataset(DEVELOPMENT)
    validation = population_dataset(VALIDATION)
    shifted = population_dataset(SHIFTED)
    result = fit_scorecard(
        development,
        FitConfig(
            version=FITTED_VERSION,
            description="Fitted with optbinning (monotonic binning, WoE logistic regression, "
            "pdo_odds scaling) on a simulated population that defaults; missing bins never "
            "score above their worst bin.",
            data=describe(DEVELOPMENT),
        ),
    )
    fitted = result.card
    expert = shipped_expert(development)
    evaluations = {
        "validation (seed 2)": evaluate_card(fitted, validation, describe(VALIDATION)),
        "development (seed 1)": evaluate_card(fitted, development, describe(DEVELOPMENT)),
        "expert on validation": evaluate_card(expert, validation, describe(VALIDATION)),
    }
    on_shifted = evaluate_card(fitted, shifted, describe(SHIFTED))
    evaluations_with_shift = {**evaluations, "shifted population (seed 3, risk +1)": on_shifted}
    report = Report(
        title=f"Scorecard {FITTED_VERSION}: fit and validation",
        card=fitted,
        evaluations=evaluations,
        iv=result.iv,
        dropped=result.dropped,
        coefficients=result.coefficients,
        baseline_auc={"validation (seed 2)": baseline_auc(development, validation)},
        notes=[
            f"Stability: score PSI {e.score_psi:.3f} on {name}"
            for name, e in evaluations_with_shift.items()
            if e.score_psi is not None
        ],
    )
    policies = root / "streams" / "policies"
    (policies / FITTED_FILE).write_text(scorecard_yaml(fitted, FITTED_HEADER), encoding="utf-8")
    (policies / EXPERT_FILE).write_text(scorecard_yaml(expert, EXPERT_HEADER), encoding="utf-8")
    report_dir = root / "docs" / "scorecard"
    write_report(report_dir, report)
    shift_json = on_shifted.to_json()
    stability = {
        "shifted": {
            "data": describe(SHIFTED),
            "score_psi": shift_json["score_psi"],
            "characteristic_psi": {c["name"]: c["psi"] for c in shift_json["characteristics"]},
            "auc": shift_json["auc"],
            "bad_rate": shift_json["bad_rate"],
        }
    }
    (report_dir / "stability.json").write_text(json.dumps(stable_json(stability), indent=2) + "\n")
    doc = root / "docs" / "scorecard.md"
    doc.write_text(render_scorecard_doc(doc.read_text(encoding="utf-8"), root), encoding="utf-8")
    return report

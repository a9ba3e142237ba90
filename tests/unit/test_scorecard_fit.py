"""Fitting and validating scorecards: the simulated population that defaults, datasets on disk,
the fit (optbinning) against the logistic-regression yardstick, the shipped card against the
expert one, the command line and the shipped files' reproducibility."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from streams.core.labels import point_in_time_features
from streams.core.scorecard import (
    load_default_scorecard,
    load_expert_scorecard,
    parse_scorecard,
)
from streams.modeling.__main__ import main
from streams.modeling.dataset import (
    Dataset,
    DatasetError,
    build_dataset,
    read_events,
    read_labels,
    write_events,
    write_labels,
)
from streams.modeling.evaluate import calibrate_scaling, evaluate_card, logistic_fit
from streams.modeling.fit import (
    CANDIDATES,
    FitConfig,
    FitResult,
    baseline_auc,
    fit_scorecard,
    nice,
)
from streams.modeling.pipeline import (
    EXPERT_FILE,
    FITTED_FILE,
    population_dataset,
    population_labels,
    ship,
)
from streams.modeling.population import PopulationSpec, simulate_population

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def development() -> Dataset:
    return population_dataset(PopulationSpec(users=800, seed=21))


@pytest.fixture(scope="module")
def held_out() -> Dataset:
    return population_dataset(PopulationSpec(users=800, seed=22))


@pytest.fixture(scope="module")
def fitted(development: Dataset) -> FitResult:
    return fit_scorecard(development, FitConfig(version="test-fit-1", data="seed 21"))


def test_the_population_is_seeded_and_risk_drives_default() -> None:
    spec = PopulationSpec(users=300, seed=5)
    first, again = simulate_population(spec), simulate_population(spec)
    assert [u.events for u in first] == [u.events for u in again]
    other = simulate_population(PopulationSpec(users=300, seed=6))
    assert [u.events for u in first] != [u.events for u in other]
    labelled = population_labels(spec)
    risk = {u.user_id: u.latent_risk for u in first}
    ranked = sorted(labelled.labels, key=lambda label: risk[label.user_id])
    low, high = ranked[: len(ranked) // 4], ranked[-len(ranked) // 4 :]
    assert sum(x.bad for x in high) / len(high) > 3 * sum(x.bad for x in low) / len(low)
    assert 0.05 < labelled.bad_rate < 0.25
    assert all(e.occurred_at < spec.end for u in first for e in u.events)


def test_events_and_labels_round_trip_through_files(tmp_path: Path) -> None:
    labelled = population_labels(PopulationSpec(users=40, seed=7))
    events, labels = tmp_path / "events.jsonl", tmp_path / "labels.csv"
    assert write_events(events, labelled.events) == len(labelled.events)
    assert write_labels(labels, labelled.labels) == len(labelled.labels)
    assert read_events(events) == labelled.events
    assert read_labels(labels) == labelled.labels
    first = json.loads(events.read_text().splitlines()[0])
    assert first["topic"] in ("credit.repayments", "credit.spending", "credit.assets")
    assert labels.read_text().splitlines()[0] == "user_id,as_of,bad"
    dataset = build_dataset(read_events(events), read_labels(labels))
    assert dataset.features == point_in_time_features(labelled.events, labelled.labels)


def test_a_bad_dataset_file_names_the_line(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text('{"topic": "credit.spending", "value": {"event_id": "x"}}\n')
    with pytest.raises(DatasetError, match=r"events\.jsonl:1"):
        read_events(events)
    labels = tmp_path / "labels.csv"
    labels.write_text("user_id,as_of,bad\nu-1,2026-01-01T00:00:00,1\n")
    with pytest.raises(DatasetError, match=r"labels\.csv:2"):
        read_labels(labels)  # no offset
    labels.write_text("user_id,as_of,bad\nu-1,2026-01-01T00:00:00Z,2\n")
    with pytest.raises(DatasetError, match="0 or 1"):
        read_labels(labels)


def test_a_fitted_card_keeps_every_rule(fitted: FitResult, development: Dataset) -> None:
    card = fitted.card
    assert card.kind == "fitted" and card.version == "test-fit-1"
    assert parse_scorecard(card.model_dump_json()) == card
    assert card.training is not None and card.training.rows == len(development)
    for name, c in card.characteristics.items():
        assert c.direction in ("higher_is_better", "lower_is_better")
        assert c.missing.points <= c.worst_points and c.missing.override is None
        assert min([*(b.points for b in c.bins), c.missing.points]) == 0
        assert fitted.coefficients[name] < 0
        assert all(e == nice(e) for e in c.edges)  # two significant digits
    assert set(fitted.iv) == {c.name for c in CANDIDATES}
    for name in fitted.dropped:
        assert name not in card.characteristics
    # The points reproduce the model: PD from the score ≈ the regression's probability.
    evaluation = evaluate_card(card, development)
    assert abs(evaluation.mean_pd - development.bad_rate) < 0.01
    first, last = evaluation.deciles[0], evaluation.deciles[-1]
    assert first.bad_rate > 5 * last.bad_rate  # (strict rank ordering: the shipped report)


def test_the_fitted_auc_is_within_002_of_a_plain_logistic_regression(
    fitted: FitResult, development: Dataset, held_out: Dataset
) -> None:
    card_auc = evaluate_card(fitted.card, held_out).auc
    lr_auc = baseline_auc(development, held_out)
    assert abs(card_auc - lr_auc) <= 0.02, (card_auc, lr_auc)


def test_evaluation_reports_the_headline_figures(fitted: FitResult, held_out: Dataset) -> None:
    summary = evaluate_card(fitted.card, held_out, "seed 22").summary()
    assert {"auc", "gini", "ks", "brier", "n", "bad_rate"} <= set(summary)
    assert summary["n"] == len(held_out)
    assert math.isclose(summary["gini"], 2 * summary["auc"] - 1, abs_tol=1e-5)
    assert summary["score_psi"] < 0.1


def test_the_shipped_card_beats_the_expert_card_on_a_fresh_population() -> None:
    fresh = population_dataset(PopulationSpec(users=1000, seed=31))
    fitted = evaluate_card(load_default_scorecard(), fresh)
    expert = evaluate_card(load_expert_scorecard(), fresh)
    assert fitted.auc > expert.auc
    assert fitted.ks > expert.ks


def test_logistic_fit_and_expert_calibration(held_out: Dataset) -> None:
    x = [float(v) for v in range(-20, 21)] * 5
    y = [int((i * 7919) % 100 < 100 / (1 + math.exp(-0.2 * v))) for i, v in enumerate(x)]
    a, b = logistic_fit(x, y)
    reference = LogisticRegression(C=1e9, max_iter=1000).fit(np.array(x).reshape(-1, 1), y)
    assert a == pytest.approx(float(reference.intercept_[0]), abs=1e-4)
    assert b == pytest.approx(float(reference.coef_[0][0]), abs=1e-4)
    expert = load_expert_scorecard()
    scaling = calibrate_scaling(expert, held_out)
    assert scaling.calibrated and scaling.pdo > 0
    calibrated = expert.model_copy(update={"scaling": scaling})
    assert abs(evaluate_card(calibrated, held_out).mean_pd - held_out.bad_rate) < 0.02


@pytest.mark.slow
def test_the_command_line_simulates_fits_and_evaluates(tmp_path: Path) -> None:
    files = {name: tmp_path / name for name in ("e1", "l1", "e2", "l2", "card", "report", "j")}
    assert (
        main(
            [
                "simulate",
                "--users",
                "300",
                "--seed",
                "3",
                "--events",
                str(files["e1"]),
                "--labels",
                str(files["l1"]),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "simulate",
                "--users",
                "300",
                "--seed",
                "4",
                "--events",
                str(files["e2"]),
                "--labels",
                str(files["l2"]),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "fit",
                "--events",
                str(files["e1"]),
                "--labels",
                str(files["l1"]),
                "--version",
                "cli-1",
                "--out",
                str(files["card"]),
                "--report",
                str(files["report"]),
                "--validation-events",
                str(files["e2"]),
                "--validation-labels",
                str(files["l2"]),
                "--compare",
                str(ROOT / "streams" / "policies" / EXPERT_FILE),
            ]
        )
        == 0
    )
    card = parse_scorecard(files["card"].read_text())
    assert card.version == "cli-1"
    report = json.loads((files["report"] / "report.json").read_text())
    assert set(report["evaluations"]) == {"validation", "training", "expert-2026.11.1"}
    assert "validation" in report["baseline_auc"]
    for plot in ("roc.png", "ks.png", "calibration.png"):
        assert (files["report"] / plot).read_bytes().startswith(b"\x89PNG")
    assert "## Rank ordering" in (files["report"] / "report.md").read_text()
    assert (
        main(
            [
                "evaluate",
                "--card",
                str(files["card"]),
                "--events",
                str(files["e2"]),
                "--labels",
                str(files["l2"]),
                "--json",
                str(files["j"]),
            ]
        )
        == 0
    )
    assert json.loads(files["j"].read_text())["scorecard_version"] == "cli-1"


@pytest.mark.slow
def test_the_shipped_files_are_what_ship_produces(tmp_path: Path) -> None:
    """`python -m streams.modeling ship` reproduces the committed cards, report and docs."""
    (tmp_path / "streams" / "policies").mkdir(parents=True)
    (tmp_path / "docs").mkdir()
    shutil.copy(ROOT / "docs" / "scorecard.md", tmp_path / "docs" / "scorecard.md")
    ship(tmp_path)
    for relative in (
        f"streams/policies/{FITTED_FILE}",
        f"streams/policies/{EXPERT_FILE}",
        "docs/scorecard/report.json",
        "docs/scorecard/report.md",
        "docs/scorecard/stability.json",
        "docs/scorecard.md",
    ):
        assert (tmp_path / relative).read_text() == (ROOT / relative).read_text(), relative

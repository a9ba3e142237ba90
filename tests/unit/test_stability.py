"""Stability monitoring: PSI of the score and of each characteristic against the card's
training distribution, over a window of recent scorings."""

from __future__ import annotations

import pytest

from streams.core import model_metrics as mm
from streams.core.scorecard import Scored, load_default_scorecard, validate_scorecard
from streams.core.stability import StabilityMonitor
from streams.modeling.pipeline import population_dataset
from streams.modeling.population import PopulationSpec

FITTED = load_default_scorecard()


def monitored(spec: PopulationSpec) -> StabilityMonitor:
    monitor = StabilityMonitor(FITTED, window=100_000)
    for features in population_dataset(spec).features:
        monitor.observe(FITTED.evaluate(features))
    return monitor


def test_the_same_population_is_stable() -> None:
    report = monitored(PopulationSpec(users=500, seed=33)).report()
    assert report is not None
    assert report.score_psi < 0.1
    assert max(report.characteristic_psi.values()) < 0.1
    assert report.verdict == "stable"


def test_a_shifted_population_is_a_significant_shift() -> None:
    report = monitored(PopulationSpec(users=500, seed=41, risk_shift=1.0)).report()
    assert report is not None
    assert report.score_psi > 0.25
    assert report.verdict == "shift"


def tiny_card() -> dict[str, object]:
    return {
        "version": "tiny-1",
        "kind": "fitted",
        "scaling": {"pdo": 20, "score": 600, "odds": 50},
        "base_points": 550,
        "characteristics": {
            "assets": {
                "feature": "verified_assets",
                "measure": "verified assets",
                "direction": "higher_is_better",
                "reason": {"en": "Few assets", "zh": "资产少"},
                "bins": [{"below": 100, "points": 0, "share": 0.5}, {"points": 100, "share": 0.5}],
                "missing": {"points": 0, "share": 0.0},
            }
        },
        "training": {
            "data": "test",
            "rows": 100,
            "bad_rate": 0.1,
            "score_bands": [{"below": 600, "share": 0.5}, {"share": 0.5}],
        },
    }


def test_the_window_keeps_only_the_latest_observations() -> None:
    card = validate_scorecard(tiny_card())
    monitor = StabilityMonitor(card, window=4)
    assert monitor.report() is None
    for value in (0.0, 0.0, 0.0, 0.0, 500.0, 500.0):
        monitor.observe(card.evaluate({"verified_assets": value}))
    assert len(monitor) == 4
    report = monitor.report()
    assert report is not None
    # The window holds 0, 0, 500, 500: exactly the training shares.
    assert report.score_psi == pytest.approx(0.0)
    assert report.characteristic_psi["assets"] == pytest.approx(0.0)
    for _ in range(4):
        monitor.observe(card.evaluate({"verified_assets": 0.0}))
    report = monitor.report()
    assert report is not None
    assert report.score_psi == pytest.approx(mm.psi([0.5, 0.5], [4, 0]))
    assert report.verdict == "shift"


def test_a_monitor_needs_a_training_distribution_and_its_own_version() -> None:
    doc = tiny_card()
    card = validate_scorecard(doc)
    with pytest.raises(ValueError, match="another scorecard version"):
        StabilityMonitor(card).observe(Scored(600, {"assets": 100}, {"assets": 1}, 0.02, "x"))
    del doc["training"]
    with pytest.raises(ValueError, match="no training distribution"):
        StabilityMonitor(validate_scorecard(doc))

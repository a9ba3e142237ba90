"""docs/scorecard.md matches the shipped cards and their report."""

from __future__ import annotations

from pathlib import Path

from streams.core.scorecard import load_default_scorecard, load_expert_scorecard
from streams.modeling.docs import render_scorecard_doc

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "scorecard.md"


def test_scorecard_doc_generated_sections_are_current() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert render_scorecard_doc(text) == text, "run `python -m streams.modeling docs`"


def test_scorecard_doc_names_every_characteristic_and_both_versions() -> None:
    text = DOC.read_text(encoding="utf-8")
    for card in (load_default_scorecard(), load_expert_scorecard()):
        assert f"`{card.version}`" in text
        assert all(f"`{name}`" in text for name in card.characteristics)
    for plot in ("roc.png", "ks.png", "calibration.png"):
        assert (ROOT / "docs" / "scorecard" / plot).exists()

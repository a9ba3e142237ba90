"""The README's generated sections match the code (scorecard, settings)."""

from __future__ import annotations

from pathlib import Path

from streams.docs import render_readme, scorecard_markdown, settings_markdown

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_generated_sections_are_current() -> None:
    text = README.read_text()
    assert render_readme(text) == text, "run `python -m streams.docs` to refresh the README"


def test_generated_sections_name_every_attribute_and_setting() -> None:
    from streams.core.policy import load_default_policy
    from streams.settings import Settings

    card = scorecard_markdown()
    assert all(f"`{name}`" in card for name in load_default_policy().scorecard.attributes)
    table = settings_markdown()
    assert all(f"CREDITLINE_{name.upper()}" in table for name in Settings.model_fields)

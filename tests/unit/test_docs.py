"""The README's generated sections match the code (scorecard, settings)."""

from __future__ import annotations

from pathlib import Path

from streams.core.decision import decide
from streams.core.policy import load_default_policy
from streams.core.scoring import assess
from streams.core.state import fold_events
from streams.devtools.docs import (
    POLICY_DOC_SECTIONS,
    render_readme,
    render_sections,
    scorecard_markdown,
    settings_markdown,
    worked_example_events,
)
from tests.builders import loan_request

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
POLICY_DOC = ROOT / "docs" / "policy.md"


def test_readme_generated_sections_are_current() -> None:
    text = README.read_text()
    assert render_readme(text) == text, (
        "run `python -m streams.devtools.docs` to refresh the README"
    )


def test_generated_sections_name_every_attribute_and_setting() -> None:
    from streams.core.scorecard import load_default_scorecard
    from streams.settings import Settings

    card = scorecard_markdown()
    assert all(f"`{name}`" in card for name in load_default_scorecard().characteristics)
    table = settings_markdown()
    assert all(f"CREDITLINE_{name.upper()}" in table for name in Settings.model_fields)


def test_policy_doc_generated_example_is_current() -> None:
    text = POLICY_DOC.read_text()
    assert render_sections(text, POLICY_DOC_SECTIONS) == text, (
        "run `python -m streams.devtools.docs`"
    )


def test_worked_example_figures_quoted_in_the_prose_hold() -> None:
    policy = load_default_policy()
    now, before, proofs = worked_example_events()
    closed = fold_events(None, before)
    reopened = fold_events(None, before + proofs)
    assert closed is not None and reopened is not None
    a, b = assess(closed, now, policy), assess(reopened, now, policy)
    assert (a.score, a.status.value, b.score, b.status.value) == (496, "closed", 615, "open")
    assert (f"{a.pd:.1%}", f"{b.pd:.1%}") == ("24.2%", "3.9%")
    assert (str(b.credit_limit), str(b.available_limit)) == ("30500.00", "27500.00")
    decision = decide(
        loan_request(
            user_id="u-42", amount="5000", requested_at=now.isoformat(), displayed_status="closed"
        ),
        b,
        now,
        policy,
    )
    assert decision.outcome.value == "approved"
    assert [r.code for r in decision.reasons] == ["LIVE_STATUS_OPEN"]
    assert decision.overrides_displayed_status


def test_the_redis_layout_document_is_current() -> None:
    from streams.devtools.docs import REDIS_LAYOUT_SECTIONS

    doc = ROOT / "docs" / "redis-layout.md"
    text = doc.read_text()
    assert render_sections(text, REDIS_LAYOUT_SECTIONS) == text, (
        "run `python -m streams.devtools.docs`"
    )

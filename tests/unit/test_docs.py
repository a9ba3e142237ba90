"""The generated docs match the code: whole pages (configuration, wire contract) and marked
sections (scorecard, Kafka ACLs, the policy's worked examples, the Redis layout); the README
stays short, keeps its two commands, and links only to files that exist."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from streams.core.decision import decide
from streams.core.policy import load_default_policy
from streams.core.scoring import assess
from streams.core.state import fold_events
from streams.devtools.config_docs import settings_markdown
from streams.devtools.docs import (
    DOC_SECTIONS,
    GENERATED_PAGES,
    render_sections,
    scorecard_markdown,
    worked_example_events,
)
from tests.builders import loan_request

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
REFRESH = "run `python -m streams.devtools.docs` to refresh it"


@pytest.mark.parametrize("path", sorted(GENERATED_PAGES))
def test_generated_pages_are_current(path: str) -> None:
    text = (ROOT / path).read_text()
    assert GENERATED_PAGES[path]() == text, f"{path} drifted: {REFRESH}"


@pytest.mark.parametrize("path", sorted(DOC_SECTIONS))
def test_generated_sections_are_current(path: str) -> None:
    text = (ROOT / path).read_text()
    assert render_sections(text, DOC_SECTIONS[path]) == text, f"{path} drifted: {REFRESH}"


def test_generated_sections_name_every_attribute_and_setting() -> None:
    from streams.core.scorecard import load_default_scorecard
    from streams.settings import Settings

    card = scorecard_markdown()
    assert all(f"`{name}`" in card for name in load_default_scorecard().characteristics)
    table = settings_markdown()
    assert all(f"CREDITLINE_{name.upper()}" in table for name in Settings.model_fields)


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


def test_the_wire_contract_page_names_every_topic_record_and_field() -> None:
    import json

    import yaml

    from schemas.export import ASYNCAPI_PATH, SCHEMA_DIR

    page = (ROOT / "docs" / "wire-contract.md").read_text()
    asyncapi = yaml.safe_load(ASYNCAPI_PATH.read_text())
    assert f"**`{asyncapi['info']['version']}`**" in page
    for channel in asyncapi["channels"].values():
        assert f"| `{channel['address']}` |" in page, channel["address"]
    for header in asyncapi["components"]["messages"]["DeadLetter"]["headers"]["properties"]:
        assert f"| `{header}` |" in page, header
    for path in sorted(SCHEMA_DIR.glob("*.schema.json")):
        schema = json.loads(path.read_text())
        section = page.split(f"### {schema['title']}\n", 1)[1].split("\n### ", 1)[0]
        for field in schema["properties"]:
            assert f"| `{field}` |" in section, f"{schema['title']}.{field}"


def test_the_configuration_page_says_how_settings_are_read() -> None:
    from streams.settings import CONFIG_FILE_ENV, ENV_PREFIX

    page = (ROOT / "docs" / "configuration.md").read_text()
    assert f"`{ENV_PREFIX}`" in page and f"`{CONFIG_FILE_ENV}`" in page
    assert settings_markdown() in page


def test_the_contract_page_lists_every_dead_letter_code() -> None:
    from streams.core.decoding import RejectCode
    from streams.service.shell import ServiceCode

    text = (ROOT / "docs" / "contract.md").read_text()
    codes = text.split("## Dead letters", 1)[1]
    for code in [*RejectCode, *ServiceCode]:
        assert f"`{code.value}`" in codes, code


# ---- the README ----------------------------------------------------------------------------

#: A relative link's target in Markdown: `](path)` or `](path#anchor)`, outside code blocks.
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _outside_code_blocks(text: str) -> str:
    return "".join(
        part for i, part in enumerate(re.split(r"^```.*$", text, flags=re.M)) if i % 2 == 0
    )


def _anchors(markdown: str) -> set[str]:
    """GitHub's anchors of a document's headings (what pymdownx.slugs makes in the site)."""
    anchors = set()
    for heading in re.findall(r"^#{1,6} (.+)$", _outside_code_blocks(markdown), flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
        anchors.add(slug.replace(" ", "-"))
    return anchors


def test_the_readme_is_short_and_keeps_its_two_commands() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    assert "make run    # installs everything" in text
    assert "make test   # installs everything" in text
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci, "CI runs the README's test command"
    makefile = (ROOT / "Makefile").read_text()
    test_target = re.search(r"^test: (.*)$", makefile, flags=re.M)
    assert test_target is not None and "docs" in test_target.group(1).split()
    assert "mkdocs build --strict" in makefile


def test_the_readme_links_lead_to_files_of_the_repository() -> None:
    text = _outside_code_blocks(README.read_text())
    checked = 0
    for target in _LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue
        path, _, anchor = target.partition("#")
        linked = ROOT / path
        assert linked.exists(), f"README links to {target}, which is not in the repository"
        if anchor:
            assert anchor in _anchors(linked.read_text()), f"README: no #{anchor} in {path}"
        checked += 1
    assert checked >= 10


def test_the_site_lists_the_readme_and_the_changelog_as_pages() -> None:
    # docs/index.md and docs/changelog.md are symbolic links, so their text never drifts.
    assert (ROOT / "docs" / "index.md").resolve() == README.resolve()
    assert (ROOT / "docs" / "changelog.md").resolve() == (ROOT / "CHANGELOG.md").resolve()


def test_the_changing_strategy_example_holds_what_its_prose_says() -> None:
    from streams.devtools.strategy_docs import (
        HYSTERESIS,
        REOPEN_AT,
        example,
        flip_kind,
        persona_of_user,
    )

    ex = example()
    start = ex.what_if.window.start
    policy = load_default_policy()
    close_below, reopen_at = (
        policy.status.thresholds.close_below,
        policy.status.thresholds.reopen_at,
    )
    flips = [p for p in ex.pairs if p.flipped]
    assert flips
    for p in flips:
        # Slipping users, closed by the default since their first review, scored under 590…
        assert persona_of_user(p.user_id) == "slipping"
        assert p.live.effective_status.value == "closed"
        assert p.live.status_since is not None and p.live.status_since < start
        assert p.live.score is not None and close_below <= p.live.score < reopen_at
        # … whose lines the candidate would have opened months before.
        assert p.candidate.effective_status.value == "open"
        since = p.candidate.status_since
        assert since is not None and since < start - timedelta(days=30)
        if flip_kind(p) == HYSTERESIS:
            assert p.live.score < REOPEN_AT
    before, after = ex.what_if.by_segment["thin_file"]
    assert before == after  # its own thresholds
    before, after = ex.what_if.by_segment["standard"]
    assert before.mean_pd is not None and after.mean_pd is not None
    assert after.mean_pd > before.mean_pd
    assert (after.mean_expected_loss or 0) > (before.mean_expected_loss or 0)
    # Promoted at each instant, most of the what-if's flips are not made.
    promoted = sum(ex.promoted[p.request_id].outcome != p.live.outcome for p in ex.pairs)
    assert promoted < len(flips) / 2
    # The shadow week: the what-if's candidate side answered the same for every request;
    # slipping lines frozen on both sides; only fields a switch explains differ.
    assert ex.same_answer == ex.cross_check.requests == ex.shadow.pairs > 0
    for p in ex.week:
        if persona_of_user(p.user_id) == "slipping":
            assert p.live.effective_status.value == p.candidate.effective_status.value == "frozen"
    assert set(ex.differing_fields) <= {
        "score",
        "pd",
        "credit_limit",
        "available_limit",
        "status_since",
        "path_back",
    }
    text = (ROOT / "docs" / "policy.md").read_text()
    assert "## Changing strategy" in text and "### The apply guard" in text

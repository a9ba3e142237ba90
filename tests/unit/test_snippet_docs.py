"""The docs quote their snippet files verbatim (scripts/sync-snippets.py), and every snippet
is quoted and run by tests/e2e/test_first_event.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_docs_quote_the_snippet_files_as_they_are() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "sync-snippets.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_snippet_is_quoted_and_run() -> None:
    docs = "".join(p.read_text() for p in (ROOT / "docs").glob("*.md"))
    test = (ROOT / "tests" / "e2e" / "test_first_event.py").read_text()
    for snippet in sorted((ROOT / "docs" / "snippets").iterdir()):
        path = f"docs/snippets/{snippet.name}"
        assert f"<!-- snippet: {path} -->" in docs, f"{path} is quoted by no doc"
        assert path in test, f"{path} is run by no test"

#!/usr/bin/env python3
"""Copy every snippet file into the docs that quote it, so a doc shows exactly what runs.

A doc quotes a file between markers, and the fenced block in between is this script's:

    <!-- snippet: docs/snippets/quickstart-kcat.sh -->
    ```sh
    ...the file...
    ```
    <!-- /snippet -->

    scripts/sync-snippets.py          rewrite the blocks of docs/*.md from the files
    scripts/sync-snippets.py --check  exit 1 if any block differs (a unit test runs this)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(
    r"(?P<open><!-- snippet: (?P<path>[^ ]+) -->\n).*?(?P<close><!-- /snippet -->)", re.DOTALL
)
LANGUAGE = {".sh": "sh", ".py": "python", ".java": "java"}


def render(text: str) -> str:
    """``text`` with every snippet block holding its file's current content."""

    def block(match: re.Match[str]) -> str:
        path = ROOT / match["path"]
        body = path.read_text()
        fence = LANGUAGE.get(path.suffix, "")
        return f"{match['open']}```{fence}\n{body}```\n{match['close']}"

    return BLOCK.sub(block, text)


def main() -> int:
    check = "--check" in sys.argv[1:]
    stale = []
    for doc in sorted((ROOT / "docs").glob("*.md")):
        text = doc.read_text()
        rendered = render(text)
        if rendered != text:
            stale.append(doc.relative_to(ROOT))
            if not check:
                doc.write_text(rendered)
    if check and stale:
        print(f"snippets out of date in {', '.join(map(str, stale))}: run scripts/sync-snippets.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

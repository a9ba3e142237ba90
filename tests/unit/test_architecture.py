"""The code's shape: a layered import graph, and modules small enough to read whole."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Longer modules must say in their docstring why they are not split.
MAX_LINES = 400


def test_the_import_graph_keeps_its_layers() -> None:
    """import-linter's contracts (pyproject.toml): cli > runtime > service > adapters >
    ports > core > schemas; no I/O library in the core or the services; devtools only for
    the command line."""
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def test_no_module_is_long_without_a_reason() -> None:
    long = []
    for path in sorted((ROOT / "streams").rglob("*.py")):
        text = path.read_text()
        if text.count("\n") > MAX_LINES and "Longer than" not in text.split('"""')[1]:
            long.append(f"{path.relative_to(ROOT)}: {text.count(chr(10))} lines")
    assert not long, long

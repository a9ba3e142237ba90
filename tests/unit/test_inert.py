"""Producer data printed inertly: no control character reaches the terminal, no markup runs."""

from __future__ import annotations

import io
import unicodedata

from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console
from rich.table import Table

from streams.cli.dlq import _inert
from streams.core.inert import inert

HOSTILE = "\x1b[2J[bold red]x[/]\r\x07\x9b31m\u202eevil\u2066\u200b\U000e0041\u2028\ud800\x7f"
UNSAFE = {"Cc", "Cf", "Zl", "Zp", "Cs"}


def test_controls_and_invisible_formatting_are_escaped() -> None:
    assert inert(HOSTILE) == (
        "\\x1b[2J[bold red]x[/]\\r\\x07\\x9b31m\\u202eevil\\u2066\\u200b\\U000e0041"
        "\\u2028\\ud800\\x7f"
    )
    assert inert("tab\tnew\nline") == "tab\\tnew\\nline"


def test_printable_text_is_left_alone() -> None:
    for text in ("[bold red]x[/]", "实时评分", "café", "a b\u00a0c", ":smile:", "\\x1b"):
        assert inert(text) == text


@given(st.text())
def test_nothing_unsafe_survives(text: str) -> None:
    out = inert(text)
    assert not any(unicodedata.category(c) in UNSAFE for c in out)
    if text.isprintable():
        assert out == text


def test_the_cli_renders_producer_text_literally() -> None:
    sink = io.StringIO()
    console = Console(file=sink, width=300, force_terminal=False, color_system=None)
    table = Table(show_header=False, title=_inert("[blink]title[/blink]"))
    table.add_row(_inert("original.[bold]h[/bold]"), _inert(HOSTILE))
    table.add_row(_inert(":smile: [link=https://example.invalid]click[/link]"), "")
    console.print(table)
    out = sink.getvalue()
    assert "[blink]title[/blink]" in out
    assert "original.[bold]h[/bold]" in out
    assert "[bold red]x[/]" in out
    assert ":smile: [link=https://example.invalid]click[/link]" in out
    assert "\\x1b[2J" in out
    assert not any(unicodedata.category(c) in UNSAFE for c in out.replace("\n", ""))

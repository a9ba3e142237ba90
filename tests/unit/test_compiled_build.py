"""`make install` builds the compiled status machine wherever cargo is (else the Python core
answers alone, and says so)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from streams.core import compiled


def test_the_compiled_loop_is_built_where_cargo_is() -> None:
    if shutil.which("cargo") is None and not (Path.home() / ".cargo" / "bin" / "cargo").exists():
        pytest.skip("no cargo on this machine: the Python core answers alone")
    assert compiled.available(), "cargo is here but `make install` did not build native/"
    assert compiled.active()


def test_the_switch_turns_the_compiled_loop_off_and_on() -> None:
    compiled.use_compiled(False)
    try:
        assert not compiled.active()
    finally:
        compiled.use_compiled(True)
    assert compiled.active() == compiled.available()

"""A test about to time out says which ``await`` it hangs in."""

from __future__ import annotations

from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]

HANGING = """
import asyncio
import pytest

async def wait_forever(never: asyncio.Event) -> None:
    await never.wait()

@pytest.mark.asyncio
@pytest.mark.timeout(2)
async def test_hangs() -> None:
    helper = asyncio.create_task(wait_forever(asyncio.Event()))
    await helper
"""


def test_a_hanging_test_prints_its_pending_tasks_before_it_times_out(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPOSITORY))  # the plugin, for the inner pytest
    pytester.makeconftest('pytest_plugins = ["tests.hang_report"]')
    pytester.makepyfile(test_hanging=HANGING)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:xdist")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "near its timeout: 2 pending asyncio task(s)" in out, out
    # The await chain of both tasks: the test's and the one it waits for.
    assert "await helper" in out and "await never.wait()" in out, out
    assert "Timeout" in out

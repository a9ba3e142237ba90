"""The suite's own scheduling on several processes (tests/scheduling.py): tests that share a
module-scoped fixture run in one process, so the fixture starts once."""

from __future__ import annotations

import os

import pytest

GROUP = "module:tests/unit/test_scheduling.py"


@pytest.fixture(scope="module")
def started_in() -> str | None:
    """The process that started this module's fixture."""
    return os.environ.get("PYTEST_XDIST_WORKER")


@pytest.mark.parametrize("case", range(4))
def test_tests_sharing_a_module_fixture_run_in_the_process_that_started_it(
    started_in: str | None, request: pytest.FixtureRequest, case: int
) -> None:
    assert os.environ.get("PYTEST_XDIST_WORKER") == started_in
    if started_in is not None:  # distributed: pytest-xdist's loadgroup sees the group
        assert request.node.nodeid.endswith(f"@{GROUP}")

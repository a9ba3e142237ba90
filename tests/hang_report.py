"""Before pytest-timeout fails a test, print where each of its asyncio tasks waits.

pytest-timeout dumps the threads' stacks, and a hung asyncio test shows only its event loop
waiting in ``select``: not which ``await`` never returned. A watchdog thread started with each
test prints every pending task's stack shortly before the timeout, so a CI log says where the
test hung (in CI a test's Redis PING loop ran on for 15 minutes, and its dump showed only
the loop).
"""

from __future__ import annotations

import asyncio
import gc
import io
import sys
import threading
from collections.abc import Iterator

import pytest

#: How far into the test's timeout the tasks are printed (pytest-timeout fails it at 1.0).
AT_FRACTION = 0.95


def _timeout_of(item: pytest.Item) -> float:
    marker = item.get_closest_marker("timeout")
    if marker is not None and marker.args:
        return float(marker.args[0])
    return float(item.config.getini("timeout") or 0)


def _pending_tasks() -> list[asyncio.Task[object]]:
    # Every task of every loop: the test's loop runs in the main thread, and this runs in
    # the watchdog's, which has none, so asyncio.all_tasks() cannot be asked. Where asyncio
    # keeps its tasks differs by version (3.11 `_all_tasks`, 3.12 `_scheduled_tasks` plus
    # `_eager_tasks`, 3.14 a per-thread list in C); the garbage collector sees them all.
    return [o for o in gc.get_objects() if isinstance(o, asyncio.Task) and not o.done()]


def print_pending_tasks(title: str) -> None:
    """Print each pending asyncio task and the stack of ``await``s it waits in."""
    out = io.StringIO()
    tasks = _pending_tasks()
    out.write(f"\n~~~~~~~~ {title}: {len(tasks)} pending asyncio task(s) ~~~~~~~~\n")
    for task in tasks:
        try:
            task.print_stack(limit=25, file=out)
        except RuntimeError as exc:  # the set changed meanwhile: the rest still say enough
            out.write(f"{task!r}: {exc}\n")
    sys.stdout.write(out.getvalue())
    sys.stdout.flush()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    """Watch each test (setup to teardown, as pytest-timeout does) with a daemon timer."""
    seconds = _timeout_of(item)
    timer = None
    if seconds > 0:
        timer = threading.Timer(
            seconds * AT_FRACTION, print_pending_tasks, args=(f"{item.nodeid} near its timeout",)
        )
        timer.daemon = True
        timer.start()
    try:
        yield
    finally:
        if timer is not None:
            timer.cancel()

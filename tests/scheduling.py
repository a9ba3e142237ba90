"""How the suite runs on several processes (pytest-xdist, ``-n auto --dist loadgroup`` in
pyproject.toml's addopts): how many, which tests stay together, and in which order.

* How many: ``PYTEST_XDIST_AUTO_NUM_WORKERS`` if set (or ``-n N`` on the command line; ``-n 0``
  runs in this process), else :data:`WORKERS` — more than the cores, since the integration
  and end-to-end tests mostly wait for worker processes, brokers and Redis servers. A run of
  the unit tests alone (CPU-bound) gets one process per core, and a run of a few named tests
  no more processes than tests.
* Together: the tests that share a module-scoped fixture (a private Kafka cluster, a worker
  for a module) run on one process, and so do those sharing one of :data:`SHARED_SERVERS`,
  so each is started once. Every other test is a unit of its own.
* Order: the longest units first (by :data:`DURATIONS`, measured; ``pytest
  --store-durations`` measures them again), so that none is left to start at the end while
  the other processes are idle.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

import pytest
from _pytest.nodeid import NodeId

TESTS = Path(__file__).resolve().parent
#: Seconds each longer test took (setup, call and teardown), by node id.
DURATIONS = TESTS / "durations.json"
#: Processes for a run that includes integration or end-to-end tests.
WORKERS = 4
#: Session-scoped fixtures that start a server worth starting once per run, not per process.
SHARED_SERVERS = ("tls_broker",)
#: Estimated seconds of a test not in DURATIONS, by folder.
UNKNOWN = {"e2e": 10.0, "integration": 1.0, "unit": 0.1}
#: Tests shorter than this are not kept in DURATIONS.
KEPT = 0.5


def add_options(parser: pytest.Parser) -> None:
    parser.addoption(
        "--store-durations",
        action="store_true",
        help=f"write each test's duration to {DURATIONS.relative_to(TESTS.parent)} at the end",
    )


def worker_count(config: pytest.Config) -> int | None:
    """Processes for ``-n auto``; None leaves it to pytest-xdist (its environment variable)."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    cores = os.cpu_count() or 1
    args = [str(a) for a in config.args]
    paths = [Path(a.split("::")[0]).resolve() for a in args]
    if paths and all(TESTS / "unit" in [p, *p.parents] for p in paths):
        count = min(cores, WORKERS)
    else:
        count = WORKERS
    if args and all("::" in a for a in args):
        count = min(count, len(args))
    return count


def _known() -> dict[str, float]:
    try:
        durations: dict[str, float] = json.loads(DURATIONS.read_text())
    except FileNotFoundError:
        return {}
    return durations


def _estimate(item: pytest.Item, known: dict[str, float]) -> float:
    if item.nodeid in known:
        return known[item.nodeid]
    layer = Path(str(item.path)).relative_to(TESTS).parts[0]
    return UNKNOWN.get(layer, 0.1)


def _shared_by(item: pytest.Item) -> list[str]:
    """What a test shares with others: modules whose module-scoped fixtures it uses, and
    the shared servers it uses."""
    if not isinstance(item, pytest.Function):
        return []
    keys = [f"server:{name}" for name in SHARED_SERVERS if name in item.fixturenames]
    for definitions in item._fixtureinfo.name2fixturedefs.values():
        if definitions and definitions[-1].scope == "module":
            keys.append(f"module:{item.path.relative_to(TESTS.parent)}")
    return keys


def _join_group(item: pytest.Item, group: str) -> None:
    """Put a test in an ``xdist_group``. pytest-xdist's loadgroup groups tests by an
    ``@group`` suffix of their ids, which its own hook writes to ``Item._nodeid``; pytest 9
    keeps the id in ``Item._id`` instead, so that suffix never showed and every test was a
    unit of its own (two 3-node clusters started at once). The suffix is written here."""
    item.add_marker(pytest.mark.xdist_group(group))
    if not item.nodeid.endswith(f"@{group}"):
        item._id = NodeId.parse(f"{item.nodeid}@{group}")


def schedule(items: list[pytest.Item]) -> None:
    """Mark tests that must stay together with one ``xdist_group`` and order the units,
    longest first (a unit's tests keep their order)."""
    # Tests sharing any key are one unit (union-find over the keys).
    parent: dict[str, str] = {}

    def root(key: str) -> str:
        while parent.setdefault(key, key) != key:
            key = parent[key]
        return key

    first_keys: dict[int, str] = {}
    for index, item in enumerate(items):
        keys = _shared_by(item)
        if keys:
            first_keys[index] = keys[0]
            for key in keys:
                parent[root(key)] = root(keys[0])
    members: dict[str, list[str]] = defaultdict(list)
    for key in parent:
        members[root(key)].append(key)
    name_of = {r: min(keys) for r, keys in members.items()}

    known = _known()
    # Estimated before the ids get their @group suffix: DURATIONS has them without.
    seconds = [_estimate(item, known) for item in items]
    units: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        if index in first_keys:
            group = name_of[root(first_keys[index])]
            _join_group(item, group)
            units.setdefault(group, []).append(index)
        else:
            units[item.nodeid] = [index]
    weight = {unit: sum(seconds[i] for i in indices) for unit, indices in units.items()}
    ordered = sorted(units, key=lambda unit: -weight[unit])  # stable: ties keep their order
    items[:] = [items[i] for unit in ordered for i in units[unit]]


class DurationRecorder:
    """With ``--store-durations``: each test's setup, call and teardown added up, written to
    :data:`DURATIONS` at the end (by the controlling process when distributed)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # Distributed, a grouped test's id ends in @group.
        self.seconds[report.nodeid.partition("@")[0]] += report.duration

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        # Tests not run this time keep their figure: a partial run measures only its own.
        durations = _known()
        for nodeid, seconds in self.seconds.items():
            durations.pop(nodeid, None)
            if seconds >= KEPT:
                durations[nodeid] = round(seconds, 1)
        DURATIONS.write_text(json.dumps(dict(sorted(durations.items())), indent=0) + "\n")

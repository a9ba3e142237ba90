"""The lock files: every distribution pinned with its hashes, the dev lock a superset of the
runtime lock, pyproject's pins honoured, and the installs that require the hashes."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
_ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\]+)")
_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")


def read_lock(name: str) -> dict[str, tuple[str, frozenset[str]]]:
    """``{package: (version, hashes)}`` of a lock file, refusing anything but hashed pins."""
    locked: dict[str, tuple[str, frozenset[str]]] = {}
    current: str | None = None
    for line in (ROOT / name).read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        entry = _ENTRY.match(line)
        if entry:
            current = canonicalize_name(entry.group(1))
            assert current not in locked, f"{name}: {current} twice"
            locked[current] = (entry.group(2), frozenset())
        hashes = _HASH.findall(line)
        if hashes:
            assert current is not None, f"{name}: a hash before any package"
            version, known = locked[current]
            locked[current] = (version, known | set(hashes))
            continue
        # Only pins and their hashes: no -r, -c, -e, --find-links or --index-url lines.
        assert entry, f"{name}: unexpected line {line!r}"
    for package, (_, known_hashes) in locked.items():
        assert known_hashes, f"{name}: {package} has no hash"
    return locked


def _pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_pin_carries_its_hashes_and_the_dev_lock_contains_the_runtime_lock() -> None:
    runtime = read_lock("requirements.lock")
    dev = read_lock("requirements-dev.lock")
    assert len(runtime) >= 40
    for package, pin in runtime.items():
        assert dev.get(package) == pin, f"{package}: the dev lock pins it differently"


@pytest.mark.parametrize(
    ("lock", "group"), [("requirements.lock", None), ("requirements-dev.lock", "dev")]
)
def test_the_locks_pin_pyproject_s_versions(lock: str, group: str | None) -> None:
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    declared: list[str] = (
        project["dependencies"] if group is None else project["optional-dependencies"][group]
    )
    locked = read_lock(lock)
    for text in declared:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{lock} misses {name}: run scripts/lock.sh"
        assert locked[name][0] in requirement.specifier, f"{lock}: {name} {locked[name][0]}"


def test_installs_require_the_hashes() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install -q --require-hashes -r requirements-dev.lock" in makefile
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "--require-hashes -r requirements.lock" in dockerfile


def test_newer_pythons_are_not_excluded() -> None:
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    allowed = SpecifierSet(project["requires-python"])
    for version in ("3.11", "3.12", "3.13", "3.14"):
        assert allowed.contains(version), version
    assert not allowed.contains("3.10")

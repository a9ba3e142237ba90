from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from streams.runtime.tuning import PAGE_BYTES, memory_returner, resident_bytes, usable_cores

AFFINITY = len(os.sched_getaffinity(0))


def v2_tree(tmp_path: Path, group: str, limits: dict[str, str]) -> tuple[Path, Path]:
    """A unified (v2) hierarchy with ``cpu.max`` set in the groups named in ``limits``."""
    root = tmp_path / "cgroup"
    (root / group.lstrip("/")).mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpu memory\n")
    for name, value in limits.items():
        (root / name.lstrip("/") / "cpu.max").write_text(value + "\n")
    membership = tmp_path / "self-cgroup"
    membership.write_text(f"0::{group}\n")
    return root, membership


def test_without_a_cgroup_quota_the_affinity_decides(tmp_path: Path) -> None:
    assert usable_cores(tmp_path / "absent", tmp_path / "absent") == AFFINITY
    root, membership = v2_tree(tmp_path, "/", {"/": "max 100000"})
    assert usable_cores(root, membership) == AFFINITY


def test_a_container_quota_rounds_down_and_never_below_one(tmp_path: Path) -> None:
    root, membership = v2_tree(tmp_path, "/", {"/": "150000 100000"})  # 1.5 CPUs
    assert usable_cores(root, membership) == 1
    (root / "cpu.max").write_text("50000 100000\n")  # half a CPU: still one fold
    assert usable_cores(root, membership) == 1
    (root / "cpu.max").write_text("garbled\n")
    assert usable_cores(root, membership) == AFFINITY


def test_the_tightest_quota_above_the_process_counts(tmp_path: Path) -> None:
    # A systemd slice with CPUQuota=100% above the service's own, looser group.
    group = "/system.slice/creditline.service"
    root, membership = v2_tree(
        tmp_path, group, {"/system.slice": "100000 100000", group: "400000 100000"}
    )
    assert usable_cores(root, membership) == 1


def test_a_cgroup_v1_cpu_quota_counts(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    group = root / "cpu,cpuacct" / "docker" / "abc"
    group.mkdir(parents=True)
    (group / "cpu.cfs_quota_us").write_text("100000\n")
    (group / "cpu.cfs_period_us").write_text("100000\n")
    membership = tmp_path / "self-cgroup"
    membership.write_text("4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n")
    assert usable_cores(root, membership) == 1
    (group / "cpu.cfs_quota_us").write_text("-1\n")  # v1's "no limit"
    assert usable_cores(root, membership) == AFFINITY


def test_resident_memory_is_read_in_pages_and_is_zero_without_proc(tmp_path: Path) -> None:
    statm = tmp_path / "statm"
    statm.write_text("5000 1200 300 10 0 900 0\n")
    assert resident_bytes(statm) == 1200 * PAGE_BYTES
    assert resident_bytes(tmp_path / "missing") == 0
    statm.write_text("")
    assert resident_bytes(statm) == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_memory_freed_inside_the_heap_goes_back_to_the_system() -> None:
    give_back = memory_returner()
    assert give_back is not None
    give_back()  # what earlier tests left
    # 4 KiB blocks come from the C heap (not Python's small-object arenas, not mmap); the
    # last one kept pins the heap's top, so glibc keeps the freed ones for reuse.
    blocks = [bytes(4096) for _ in range(10_000)]
    last = blocks[-1]
    resident = resident_bytes()
    del blocks
    assert resident_bytes() > resident - 8 * 2**20  # still held: 40 MiB freed, not returned
    returned = give_back()
    assert returned > 30 * 2**20, returned
    assert give_back() < 2**20  # nothing more to give
    assert len(last) == 4096

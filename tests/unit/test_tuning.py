from __future__ import annotations

import os
from pathlib import Path

from streams.runtime.tuning import usable_cores


def test_usable_cores_is_the_affinity_without_a_cgroup_limit(tmp_path: Path) -> None:
    affinity = len(os.sched_getaffinity(0))
    assert usable_cores(tmp_path / "absent") == affinity
    unlimited = tmp_path / "cpu.max"
    unlimited.write_text("max 100000\n")
    assert usable_cores(unlimited) == affinity


def test_usable_cores_is_lowered_to_a_cgroup_quota_rounded_down(tmp_path: Path) -> None:
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("150000 100000\n")  # a container limited to 1.5 CPUs
    assert usable_cores(cpu_max) == min(1, len(os.sched_getaffinity(0)))
    cpu_max.write_text("50000 100000\n")  # half a CPU: still one fold
    assert usable_cores(cpu_max) == 1
    cpu_max.write_text("garbled\n")
    assert usable_cores(cpu_max) == len(os.sched_getaffinity(0))

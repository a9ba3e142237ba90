"""The benchmark's CPU accounting: cores used by the machine and by each group of processes
between two readings of /proc (the arithmetic on made-up readings; the reading itself on
this machine's /proc)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from bench.process import (
    CpuReading,
    child_pids,
    cores_used,
    machine_jiffies,
    own_cpu_seconds,
    pids_running,
    read_cpu,
)

STAT = "cpu  100 5 50 800 20 1 4 10 0 0\ncpu0 50 2 25 400 10 0 2 5 0 0\nintr 12345\n"


def test_the_machines_time_is_read_by_kind_from_the_cpu_total_line() -> None:
    # user nice system idle iowait irq softirq steal; guest figures are inside user.
    assert machine_jiffies(STAT) == (100, 5, 50, 800, 20, 1, 4, 10)


def test_a_text_that_is_not_proc_stat_is_refused() -> None:
    with pytest.raises(ValueError, match="/proc/stat"):
        machine_jiffies("intr 12345\n")


def test_a_process_time_is_user_plus_system_whatever_its_name_holds() -> None:
    ticks = os.sysconf("SC_CLK_TCK")
    # A name with spaces and a ')' inside: the fields are counted from the last ')'.
    fields = ["S", "1", "1", "1", "0", "-1", "0", "0", "0", "0", "0"]
    stat = f"42 (a) odd) name) {' '.join(fields)} {3 * ticks} {ticks} 0 0 20 0 1 0"
    assert own_cpu_seconds(stat) == pytest.approx(4.0)


def reading(wall: float, machine: tuple[int, ...], **groups: dict[int, float]) -> CpuReading:
    return CpuReading(wall, machine, groups)


def test_cores_are_shares_of_the_machine_and_each_groups_seconds_per_second() -> None:
    before = reading(0.0, (0,) * 8, fold={10: 1.0}, kafka={20: 5.0, 21: 1.0})
    # 10 s on 2 cores: 2,000 jiffies of which 500 idle, 100 iowait, 40 steal.
    after = reading(
        10.0,
        (1000, 0, 300, 500, 100, 0, 60, 40),
        fold={10: 6.8},
        kafka={20: 7.0, 21: 2.0},
    )
    used = cores_used(before, after, cpus=2)
    assert used == {"busy": 1.4, "steal": 0.04, "fold": 0.58, "kafka": 0.3}


def test_a_process_seen_at_one_reading_only_is_left_out_and_an_empty_group_too() -> None:
    before = reading(0.0, (0,) * 8, bench={1: 1.0, 2: 9.0}, redis={})
    after = reading(5.0, (0, 0, 0, 10, 0, 0, 0, 0), bench={1: 2.0, 3: 4.0}, redis={})
    used = cores_used(before, after, cpus=2)
    assert used == {"busy": 0.0, "steal": 0.0, "bench": 0.2}


def test_readings_out_of_order_are_refused() -> None:
    same = reading(1.0, (1,) * 8)
    with pytest.raises(ValueError, match="in order"):
        cores_used(same, same, cpus=2)


def test_a_running_process_is_found_by_its_command_line_and_its_cpu_read() -> None:
    marker = "creditline-bench-cpu-probe"
    program = f"import time  # {marker}\nsum(range(20_000_000)); print('ready', flush=True)\n"
    child = subprocess.Popen(
        [sys.executable, "-c", program + "time.sleep(30)"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"  # its command line is its own by now
        assert pids_running(marker) == [child.pid]
        first = read_cpu({"probe": [child.pid], "gone": [2**22 + 1]})
        assert first.groups["gone"] == {}  # no such process: skipped, not an error
        assert first.groups["probe"][child.pid] > 0.0  # it has summed 20 million numbers
        assert sum(first.machine) > 0
    finally:
        child.kill()
        child.wait()
    assert pids_running(marker) == []


def test_children_are_read_while_threads_come_and_go() -> None:
    # A thread ending between listing the tasks and reading its children (the Quix peer's
    # threads, once) is skipped, not an error; the child process is still found.
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            short = [threading.Thread(target=time.sleep, args=(0.0005,)) for _ in range(8)]
            for thread in short:
                thread.start()
            for thread in short:
                thread.join()

    churning = threading.Thread(target=churn)
    churning.start()
    try:
        for _ in range(3000):
            assert child.pid in child_pids(os.getpid())
    finally:
        stop.set()
        churning.join()
        child.kill()
        child.wait()

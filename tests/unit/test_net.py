from __future__ import annotations

import socket

from streams.runtime.net import LOOPBACK, free_loopback_ports


def test_ports_taken_in_one_call_are_distinct_and_free() -> None:
    # Many rounds: one-at-a-time picking handed the same port out twice in CI (a Kafka
    # node's client and controller listeners), so this must hold every time, not usually.
    for _ in range(200):
        ports = free_loopback_ports(8)
        assert len(set(ports)) == 8
        with socket.socket() as sock:
            sock.bind((LOOPBACK, ports[0]))  # free: nothing holds it after the call


def test_no_ports_asked_none_given() -> None:
    assert free_loopback_ports(0) == []


def test_the_test_harness_never_hands_a_port_out_twice() -> None:
    # A port drawn for a process not started yet is unbound: without the harness's memory
    # the OS offers ports again (within a few hundred draws, more likely than not).
    from tests.redis_nodes import free_port, free_ports

    drawn = [free_port() for _ in range(300)] + free_ports(50)
    assert len(set(drawn)) == len(drawn)


def test_a_port_promised_but_not_bound_yet_is_never_offered() -> None:
    promised = free_loopback_ports(1)[0]  # e.g. the worker's web port, bound after its folds'
    for _ in range(200):
        assert promised not in free_loopback_ports(2, avoid={promised})


def test_the_harness_draws_below_the_ephemeral_range_a_slice_per_worker() -> None:
    # Ports the OS hands out (bind(0), outgoing connections) come from the ephemeral range:
    # a port drawn there can be taken by anything before the process under test binds it.
    from tests.redis_nodes import HARNESS_PORTS_FLOOR, harness_port_range

    slices = [harness_port_range(32768, f"gw{i}", 4) for i in range(4)]
    assert all(s is not None for s in slices)
    ports = [p for s in slices if s is not None for p in s]
    assert len(ports) == len(set(ports))  # the workers' slices never overlap
    assert min(ports) >= HARNESS_PORTS_FLOOR and max(ports) < 32768
    assert harness_port_range(32768) == range(HARNESS_PORTS_FLOOR, 32768)  # not under xdist
    assert harness_port_range(20100, "gw0", 2) is None  # too narrow: the OS chooses
    assert harness_port_range(32768, "gw9", 2) is None  # an index past the count


def test_the_harness_ports_are_free_and_outside_the_ephemeral_range() -> None:
    from tests.redis_nodes import _RANGE, free_ports

    assert free_ports(0) == []
    ports = free_ports(20)
    if _RANGE is not None:  # the kernel's range is readable here (Linux)
        assert all(port in _RANGE for port in ports)
    for port in ports:
        with socket.socket() as sock:
            sock.bind((LOOPBACK, port))

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

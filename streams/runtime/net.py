"""Loopback ports for the processes the worker (and the test harness) start."""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"


def free_loopback_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """``count`` distinct ports nothing listens on right now, chosen by the OS.

    All ``count`` sockets are bound before any is closed: asking for one port at a time can
    hand the same port out twice, since a closed port is free to be chosen again."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()

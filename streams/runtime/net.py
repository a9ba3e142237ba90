"""Loopback ports for the processes the worker (and the test harness) start."""

from __future__ import annotations

import socket
from collections.abc import Collection

LOOPBACK = "127.0.0.1"


def free_loopback_ports(count: int, host: str = LOOPBACK, avoid: Collection[int] = ()) -> list[int]:
    """``count`` distinct ports nothing listens on right now, chosen by the OS, none of them
    in ``avoid`` (ports already promised to a process that has not bound them yet).

    All ``count`` sockets are bound before any is closed: asking for one port at a time can
    hand the same port out twice, since a closed port is free to be chosen again. For the
    same reason a port configured but not bound yet (the worker's own ``web_port`` while
    its folds' ports are chosen) is offered again: ``avoid`` names it."""
    while True:
        sockets = [socket.socket() for _ in range(count)]
        try:
            for sock in sockets:
                sock.bind((host, 0))
            ports = [int(sock.getsockname()[1]) for sock in sockets]
        finally:
            for sock in sockets:
                sock.close()
        if not set(ports).intersection(avoid):
            return ports

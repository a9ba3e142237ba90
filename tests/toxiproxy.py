"""Network faults for tests: a toxiproxy server of the test's own, driven over its HTTP API.

``toxiproxy-server`` (Shopify's TCP fault proxy) is installed by ``make install``
(``scripts/install-toxiproxy.sh``) into creditline's cache directory. A test starts a server
on a free loopback port, puts a :class:`Proxy` between a client and a service, and adds
*toxics* to the proxy's streams (``downstream``: service → client, ``upstream``: client →
service): latency, resets, a blackhole, a bandwidth limit; or disables the proxy to cut the
link (connections closed, new ones refused), or re-points it at another upstream.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest

from streams.settings import Settings
from tests.redis_nodes import LOOPBACK, free_port

Stream = Literal["upstream", "downstream"]
BOTH: tuple[Stream, Stream] = ("downstream", "upstream")


def toxiproxy_binary(settings: Settings | None = None) -> Path:
    """Where ``make install`` put toxiproxy-server (fails the test when it is missing)."""
    path = (settings or Settings()).cache_dir / "bin" / "toxiproxy-server"
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make install` (scripts/install-toxiproxy.sh)")
    return path


class ToxiproxyError(RuntimeError):
    """The toxiproxy API refused a request."""


class Toxiproxy:
    """A running toxiproxy-server on a free loopback port; its log in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def api(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / "toxiproxy.log").open("ab") as log:
            self.process = subprocess.Popen(
                [str(toxiproxy_binary()), "-host", LOOPBACK, "-port", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                self.request("GET", "/proxies")
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"toxiproxy-server did not start; see {self.directory}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One API call; its JSON answer (None when empty)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.api + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            raise ToxiproxyError(f"{method} {path}: {error.code} {detail}") from error
        return json.loads(raw) if raw.strip() else None

    def proxy(self, name: str, upstream: str, listen_port: int | None = None) -> Proxy:
        """A new, enabled proxy listening on ``listen_port`` (a free one by default)."""
        port = listen_port or free_port()
        self.request(
            "POST",
            "/proxies",
            {"name": name, "listen": f"{LOOPBACK}:{port}", "upstream": upstream},
        )
        return Proxy(self, name, port)


class Proxy:
    """One proxy: ``127.0.0.1:port`` forwards to its upstream, through its toxics."""

    def __init__(self, server: Toxiproxy, name: str, port: int) -> None:
        self.server = server
        self.name = name
        self.port = port
        self._serial = 0

    @property
    def address(self) -> str:
        """host:port clients connect to."""
        return f"{LOOPBACK}:{self.port}"

    def _update(self, **fields: Any) -> None:
        self.server.request("POST", f"/proxies/{self.name}", fields)

    # ---- the link ---------------------------------------------------------------------------
    def disable(self) -> None:
        """Cut the link: every connection is closed and new ones are refused."""
        self._update(enabled=False)

    def enable(self) -> None:
        """Restore the link after :meth:`disable`."""
        self._update(enabled=True)

    def repoint(self, upstream: str) -> None:
        """Forward to another upstream (as a failover endpoint or DNS name would): open
        connections are closed, new ones reach the new upstream."""
        self._update(upstream=upstream, enabled=True)

    # ---- toxics -----------------------------------------------------------------------------
    def add_toxic(
        self,
        kind: str,
        *,
        stream: Stream = "downstream",
        toxicity: float = 1.0,
        name: str | None = None,
        **attributes: int,
    ) -> str:
        """Add a toxic (``latency``, ``timeout``, ``reset_peer``, ``bandwidth``…) to one
        stream; ``toxicity`` is the share of connections it applies to. Returns its name."""
        self._serial += 1
        toxic = name or f"{kind}-{stream}-{self._serial}"
        self.server.request(
            "POST",
            f"/proxies/{self.name}/toxics",
            {
                "name": toxic,
                "type": kind,
                "stream": stream,
                "toxicity": toxicity,
                "attributes": attributes,
            },
        )
        return toxic

    def remove_toxic(self, name: str) -> None:
        self.server.request("DELETE", f"/proxies/{self.name}/toxics/{name}")

    def toxics(self) -> list[str]:
        """The names of the toxics in place."""
        return [t["name"] for t in self.server.request("GET", f"/proxies/{self.name}/toxics")]

    def heal(self) -> None:
        """Remove every toxic and enable the link."""
        for name in self.toxics():
            self.remove_toxic(name)
        self.enable()

    def latency(self, ms: int, jitter_ms: int = 0) -> list[str]:
        """Delay data in both directions by ``ms`` ± ``jitter_ms`` (each way)."""
        return [self.add_toxic("latency", stream=s, latency=ms, jitter=jitter_ms) for s in BOTH]

    def reset_peer(
        self, after_ms: int = 0, toxicity: float = 1.0, stream: Stream = "downstream"
    ) -> str:
        """Reset (TCP RST) connections ``after_ms`` after their first data on ``stream``,
        which is swallowed: ``downstream``, the service executed the request but its reply
        is lost; ``upstream``, the request never arrives."""
        return self.add_toxic("reset_peer", stream=stream, toxicity=toxicity, timeout=after_ms)

    def blackhole(self) -> list[str]:
        """A partition: connections stay open (new ones are accepted) but no byte gets
        through in either direction until the toxics are removed; clients notice only by
        their own timeouts."""
        return [self.add_toxic("timeout", stream=s, timeout=0) for s in BOTH]

    def bandwidth(self, kib_per_second: int) -> list[str]:
        """Limit throughput in both directions."""
        return [self.add_toxic("bandwidth", stream=s, rate=kib_per_second) for s in BOTH]

    @contextlib.contextmanager
    def toxic(self, names: list[str]) -> Iterator[None]:
        """Remove these toxics at the end of the block."""
        try:
            yield
        finally:
            for name in names:
                self.remove_toxic(name)


@contextlib.contextmanager
def running_toxiproxy(directory: Path) -> Iterator[Toxiproxy]:
    """A started toxiproxy-server, stopped afterwards."""
    server = Toxiproxy(directory)
    try:
        server.start()
        yield server
    finally:
        server.stop()

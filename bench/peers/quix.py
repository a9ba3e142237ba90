"""Runs the Quix Streams peer (:mod:`bench.peers.quix_app`) over preloaded event topics."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from bench.lag import LOOK_SECONDS, BacklogLag
from bench.peers import QUIX_GROUP_ENV, QUIX_STATE_DIR_ENV
from bench.process import tree_cpu_seconds
from streams.settings import Settings
from streams.topics import Topics
from tests.e2e.conftest import settings_env

ROOT = Path(__file__).resolve().parents[2]
#: The peer's venv: created on first use from the hashed lock, reused while the lock holds.
VENV = ROOT / ".venv-quix"
LOCK = Path(__file__).with_name("quix.lock")
#: Where `make install` leaves the compiled status machine's wheel.
NATIVE_WHEELS = ROOT / ".venv" / "native-wheels"


def ensure_venv() -> Path:
    """The peer's Python, its venv built from ``quix.lock`` (once per lock content)."""
    python = VENV / "bin" / "python"
    stamp = VENV / ".lock-installed"
    wanted = LOCK.read_text()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--require-hashes", "-r", str(LOCK)],
        check=True,
    )
    stamp.write_text(wanted)
    return python


def ensure_native(python: Path) -> bool:
    """The compiled status machine in the peer's venv too, when `make install` built its wheel:
    the peer runs the same core as the worker. Whether the peer has it."""
    wheels = sorted(NATIVE_WHEELS.glob("creditline_native-*.whl"))
    stamp = VENV / ".native-installed"
    wanted = "".join(hashlib.sha256(wheel.read_bytes()).hexdigest() for wheel in wheels)
    if wheels and (not stamp.exists() or stamp.read_text() != wanted):
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--force-reinstall", "--no-deps", *wheels],
            check=True,
        )
        stamp.write_text(wanted)
    return bool(wheels)


def _start(python: Path, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [str(python), "-m", "bench.peers.quix_app"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def quix_ingest(settings: Settings, events: int, logs: Path, limit: float) -> dict[str, Any]:
    """Start the peer on topics holding ``events`` records; its rate until every record is
    committed (checkpoints every second: up to 1 s counted against it), its CPU seconds."""
    python = ensure_venv()
    native = ensure_native(python)
    group = f"quix-peer-{uuid.uuid4().hex[:8]}"
    state_dir = logs / f"quix-state-{group}"
    env = settings_env(settings) | {
        QUIX_GROUP_ENV: group,
        QUIX_STATE_DIR_ENV: str(state_dir),
        "PYTHONPATH": str(ROOT),
    }
    topics = Topics.from_settings(settings).events
    async with BacklogLag(settings, topics, group) as lag:
        started = time.perf_counter()
        process = _start(python, env, logs / "quix-peer.log")
        try:
            cpu = 0.0
            while await lag.look() > 0:
                if process.poll() is not None:
                    raise RuntimeError(f"the Quix peer exited ({process.returncode}); see its log")
                if time.perf_counter() - started > limit:
                    raise RuntimeError(f"the Quix peer did not finish in {limit:.0f} s")
                cpu = tree_cpu_seconds(process.pid)
                await asyncio.sleep(LOOK_SECONDS)
            elapsed = time.perf_counter() - started
            cpu = tree_cpu_seconds(process.pid)
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
            shutil.rmtree(state_dir, ignore_errors=True)
    return {
        "quix_per_s": round(events / elapsed),
        "quix_seconds": round(elapsed, 1),
        "quix_cpu_seconds": round(cpu, 1),
        "quix_compiled_core": native,
    }

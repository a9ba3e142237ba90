"""The benchmark's fold-alone scenario (bench/fold_cpu.py) on the real Redis: every event
applied in each round, and the store left as it was found."""

from __future__ import annotations

from bench.fold_cpu import fold_cpu
from streams.adapters.redis.client import redis_client
from streams.settings import Settings


async def test_the_fold_alone_applies_every_event_and_leaves_no_key(
    base_settings: Settings,
) -> None:
    result = await fold_cpu(base_settings, 2_000, 200, rounds=2)
    assert result["events"] == 2_000 and len(result["cpu_us_per_event_runs"]) == 2
    assert result["cpu_us_per_event"] > 0
    client = redis_client(base_settings)
    try:
        pattern = f"{result['redis_key_prefix']}:*"
        left = [key async for key in client.scan_iter(match=pattern, count=1000)]
    finally:
        await client.aclose()
    assert left == []  # its own prefix, deleted after the last round

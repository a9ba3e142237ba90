"""The worker process on the production shapes of Redis: a Redis Cluster, and a TLS-only
server where creditline logs in as its ACL user."""

from __future__ import annotations

import secrets
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from pydantic import SecretStr

from schemas.models import Outcome
from streams.adapters.kafka.admin import ensure_topics
from streams.adapters.redis.client import redis_client
from streams.devtools.simulation import Persona, population_events, to_record
from streams.settings import Settings
from streams.topics import Topics
from tests.conftest import cleanup, isolated, on_cluster
from tests.e2e.conftest import WorkerProcess, creditline, free_port, running_worker
from tests.redis_nodes import LocalRedisCluster
from tests.secure_redis import SecureRedis
from tests.support import assert_redis_matches_reference, persona_outcomes, produce

USERS = 24
SEED = 29


async def fold_and_decide(settings: Settings) -> None:
    """A population's events reach the reference state; each user's request is answered
    from the live score (the personas' expected outcomes)."""
    topics = Topics.from_settings(settings)
    events = population_events(USERS, SEED, datetime.now(UTC))
    await produce(
        settings, [(topics.topic_for(r.kind), r.key, r.value) for r in map(to_record, events)]
    )
    await assert_redis_matches_reference(settings, events)
    outcome = await persona_outcomes(settings, USERS, SEED)
    per = USERS // len(Persona)
    assert outcome[(Persona.RECOVERING, Outcome.APPROVED, True)] == per
    assert outcome[(Persona.SLIPPING, Outcome.DECLINED, True)] == per


async def test_a_worker_on_a_redis_cluster(
    base_settings: Settings, redis_cluster: LocalRedisCluster, tmp_path: Path
) -> None:
    settings = isolated(
        on_cluster(base_settings, redis_cluster), partitions=12, web_port=free_port()
    )
    async with running_worker(settings, tmp_path / "worker.log"):
        await fold_and_decide(settings)
        # The users' keys are spread over every master, not kept on one.
        per_master = []
        for node in redis_cluster.nodes:
            client = redis_client(Settings(redis_url=f"redis://127.0.0.1:{node.port}/0"))
            try:
                pattern = f"{settings.redis_key_prefix}:*"
                per_master.append(len([k async for k in client.scan_iter(match=pattern)]))
            finally:
                await client.aclose()
    assert len(per_master) == 3
    assert all(count > 0 for count in per_master), per_master


async def test_a_worker_over_tls_as_the_acl_user_keeps_its_secret(
    base_settings: Settings, secure_redis: SecureRedis, tmp_path: Path
) -> None:
    password = secrets.token_urlsafe(18)
    settings = secure_redis.settings(
        isolated(base_settings, partitions=12, web_port=free_port()), "creditline", password
    )
    await secure_redis.grant(settings, password)
    await ensure_topics(settings)
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    try:
        worker.start()
        await fold_and_decide(settings)
        with urllib.request.urlopen(f"http://127.0.0.1:{settings.web_port}/metrics") as page:
            metrics = page.read().decode()
        status = creditline(settings, "status", "--json")
        assert worker.stop() == 0
    finally:
        worker.stop()
        await cleanup(secure_redis.admin(settings))
    # The rule the code produces covered everything the worker did, inside scripts too.
    assert await secure_redis.acl_log(settings) == []
    assert status.returncode == 0, status.stderr
    for text in (worker.log(), metrics, status.stdout, status.stderr):
        assert password not in text
    assert "Traceback" not in worker.log()


def test_a_wrong_password_is_one_clear_line_without_the_secret(
    base_settings: Settings, secure_redis: SecureRedis
) -> None:
    wrong = secrets.token_urlsafe(18)
    settings = secure_redis.settings(isolated(base_settings), "creditline", wrong)
    # A command that needs Redis stops for the operator (4); `status` reports it as a failure.
    for command, code in ((["inspect", "u-1"], 4), (["status"], 1)):
        result = creditline(settings, *command)
        assert result.returncode == code, (command, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert "refused the credentials" in lines[0]
        assert "creditline:***@127.0.0.1" in lines[0]
        assert wrong not in result.stdout + result.stderr
        assert "Traceback" not in result.stderr
    # And a URL without TLS to the TLS port says so.
    plain = settings.model_copy(
        update={
            "redis_url": SecretStr(secure_redis.url("creditline", wrong, scheme="redis")),
            "redis_tls_ca_file": None,
            "redis_tls_cert_file": None,
            "redis_tls_key_file": None,
        }
    )
    result = creditline(plain, "inspect", "u-1")
    assert result.returncode == 3  # the server drops the connection: unavailable, with a hint
    assert "use a rediss:// URL" in result.stderr
    assert wrong not in result.stderr

"""The batch jobs behind ``creditline replay`` and ``creditline explain``, wired from settings:
the Kafka topic reader, the Redis store, the policy history."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from streams.adapters.kafka.policies import (
    read_policy_history,
    read_policy_timeline,
    shadow_candidate,
)
from streams.adapters.kafka.read import KafkaReader
from streams.adapters.redis.store import RedisStore
from streams.core.labels import LabelledSet, Outcome
from streams.core.policy import load_default_policy
from streams.core.shadow import Candidate
from streams.core.timeline import PolicyTimeline
from streams.metrics import Metrics
from streams.service.dataset import Points, labelled_from_logs
from streams.service.explain import Explanation, explain
from streams.service.fold import EventFolder
from streams.service.replay import (
    NothingPublished,
    ReplayReport,
    fold_everything,
    restore_decisions,
)
from streams.service.shadow import ShadowComparison, shadow_comparison
from streams.service.shell import decode_limits
from streams.settings import Settings
from streams.topics import Topics


async def policy_timeline(settings: Settings) -> PolicyTimeline:
    """The policy and scorecard versions on the policy topic (the shipped ones before the
    first)."""
    return await read_policy_timeline(settings, load_default_policy())


async def run_scorecard_dataset(
    settings: Settings,
    outcome: Outcome,
    points: Points,
    *,
    on_progress: Callable[[int], None] = lambda done: None,
) -> LabelledSet:
    """Labelled histories from the topics (see :mod:`streams.service.dataset`)."""
    return await labelled_from_logs(
        KafkaReader(settings),
        Topics.from_settings(settings),
        decode_limits(settings),
        outcome,
        points,
        on_progress=on_progress,
    )


async def run_shadow_status(settings: Settings) -> tuple[Candidate | None, ShadowComparison]:
    """What is in shadow, and its comparison with the live decisions since it was installed
    (see :mod:`streams.service.shadow`)."""
    candidate = shadow_candidate(await read_policy_history(settings))
    since = candidate.since if candidate is not None else None
    comparison = await shadow_comparison(
        KafkaReader(settings), Topics.from_settings(settings), since
    )
    return candidate, comparison


async def run_explain(
    settings: Settings,
    request_ids: set[str] | None = None,
    *,
    on_progress: Callable[[int], None] = lambda done: None,
) -> list[Explanation]:
    """Re-derive published decisions from the topics (see :mod:`streams.service.explain`)."""
    return await explain(
        KafkaReader(settings),
        await policy_timeline(settings),
        Topics.from_settings(settings),
        decode_limits(settings),
        request_ids,
        language=settings.reason_language,
        on_progress=on_progress,
    )


async def run_replay(
    settings: Settings,
    *,
    rebuild: bool = False,
    on_total: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] = lambda done: None,
    decisions: bool = True,
) -> ReplayReport:
    """Rebuild every user's state in Redis from the input topics (``rebuild``: delete
    creditline's keys first), remember the published decisions again and re-derive each
    (counted as matching or differing). Idempotent; announces nothing again."""
    metrics = Metrics()
    store = RedisStore.connect(settings, metrics)
    report = ReplayReport()
    reader = KafkaReader(settings)
    try:
        if rebuild:
            await store.delete_everything()
        await store.ensure_layout()
        timelines = await policy_timeline(settings)
        folder = EventFolder(settings, store, NothingPublished(), metrics, lambda: timelines)
        await fold_everything(reader, folder, report, on_total=on_total, on_progress=on_progress)
        if decisions:
            retention = timedelta(days=settings.decision_retention_days)
            await restore_decisions(
                reader, store, Topics.from_settings(settings), retention, report
            )
            for explanation in await run_explain(settings):
                if explanation.rederived is None:
                    continue
                if explanation.matches:
                    report.decisions_matching += 1
                else:
                    report.decisions_differing += 1
    finally:
        await store.close()
    return report

"""The batch jobs behind ``creditline replay``, ``explain`` and ``what-if``, wired from
settings: the Kafka topic reader, the Redis store, the policy history."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from streams.adapters.kafka.policies import (
    read_policy_history,
    read_policy_timeline,
    shadow_candidate,
)
from streams.adapters.kafka.read import KafkaReader
from streams.adapters.redis.store import RedisStore
from streams.core.labels import LabelledSet, Outcome
from streams.core.policy import Policy, load_default_policy
from streams.core.scorecard import ScorecardDocument
from streams.core.shadow import Candidate
from streams.core.timeline import PolicyTimeline
from streams.core.whatif import Window, candidate_timeline
from streams.core.whatif_report import FLIPPED_LISTED, WhatIfReport, build_report
from streams.metrics import Metrics
from streams.runtime.tuning import collection_deferred
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
from streams.service.whatif import OnProgress, what_if
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
        await fold_everything(
            reader,
            folder,
            report,
            on_total=on_total,
            on_progress=on_progress,
            # As the worker folds: a batch's records live until it ends, so collections
            # inside it only re-scan them (docs/sizing.md).
            apply=collection_deferred(folder.process),
        )
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


def _live_label(timelines: PolicyTimeline, at: datetime) -> str:
    return (
        f"the policy topic's history: policy {timelines.at(at).version} and scorecard "
        f"{timelines.card_at(at).version} in force at the window's end"
    )


def _candidate_label(policy: Policy | None, card: ScorecardDocument | None) -> str:
    parts = [f"policy {policy.version}" if policy is not None else "the live policy history"]
    parts.append(f"scorecard {card.version}" if card is not None else "the live scorecard history")
    return " with ".join(parts) + ", for all time"


async def run_what_if(
    settings: Settings,
    window: Window,
    candidate_policy: Policy | None = None,
    candidate_card: ScorecardDocument | None = None,
    *,
    flipped_limit: int = FLIPPED_LISTED,
    on_progress: OnProgress = lambda phase, done, total: None,
) -> WhatIfReport:
    """Re-answer the loan requests judged in ``window`` under the live configuration (the
    policy topic's history) and the candidate (see :mod:`streams.core.whatif`), and report
    the difference (:mod:`streams.core.whatif_report`)."""
    live = await policy_timeline(settings)
    candidate = candidate_timeline(live, candidate_policy, candidate_card)
    result = await what_if(
        KafkaReader(settings),
        live,
        candidate,
        Topics.from_settings(settings),
        decode_limits(settings),
        window,
        timedelta(seconds=settings.request_time_tolerance_seconds),
        language=settings.reason_language,
        on_progress=on_progress,
    )
    return build_report(
        result.pairs,
        result.ends,
        window,
        _live_label(live, window.end),
        _candidate_label(candidate_policy, candidate_card),
        flipped_limit,
    )


async def what_if_summary(
    settings: Settings,
    candidate_policy: Policy | None = None,
    candidate_card: ScorecardDocument | None = None,
    since: timedelta = timedelta(days=7),
    on_progress: OnProgress = lambda phase, done, total: None,
) -> WhatIfReport:
    """The what-if of a candidate over the last ``since`` (for ``policy apply`` and
    ``scorecard apply`` to show before confirming: ``render_summary(report)`` in
    :mod:`streams.core.whatif_render` is its short text)."""
    now = datetime.now(UTC)
    return await run_what_if(
        settings,
        Window(now - since, now),
        candidate_policy,
        candidate_card,
        on_progress=on_progress,
    )

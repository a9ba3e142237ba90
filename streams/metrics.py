"""Every Prometheus metric creditline exports, defined once.

Conventions: one ``creditline_`` prefix, base units (seconds), ``_total`` counters, bounded
label values (topic names, reason codes, outcomes, statuses) and never a user id.

Longer than most modules: every metric, with the help text Prometheus shows, in one place.
"""

from __future__ import annotations

import platform
from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
)

import streams


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:  # pragma: no cover - always installed with creditline
        return "unknown"


def observe_all(histogram: Histogram, values: Iterable[float]) -> None:
    """``histogram.observe(value)`` for every value, each bucket and the sum moved once: a
    batch observes one value per record or user, and each ``observe`` walks the buckets under
    a lock (a backfill's days-old events walk them all). prometheus-client is pinned; the
    unit tests hold this equal to ``observe`` one by one."""
    bounds = histogram._upper_bounds
    buckets = histogram._buckets
    total, filled = 0.0, Tally[int]()
    for value in values:
        total += value
        if value == value:  # NaN falls in no bucket, as ``observe`` leaves it
            filled[bisect_left(bounds, value)] += 1
    if not filled and total == 0.0:
        return
    histogram._sum.inc(total)
    for index, count in filled.items():
        buckets[index].inc(count)


#: Probabilities of default: 0.5 % … 50 %.
PD_BUCKETS = (0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5)
#: Millisecond-level latencies: 1 ms … 10 s. Finer from 5 to 50 ms, where a decision's tail
#: and its Redis round trips lie under load: with only 10, 25 and 50, a p99 was interpolated
#: across a bucket as wide as the figure itself (docs/sizing.md).
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.025,
    0.035,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    10.0,
)
#: Event-time lag can be minutes or days when history is replayed.
LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400, 604800)
SCORE_BUCKETS = tuple(float(s) for s in range(400, 951, 50))
BATCH_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 20_000, 50_000)
#: An HTTP decision waits up to CREDITLINE_HTTP_DECISION_WAIT_SECONDS (at most 300 s).
HTTP_WAIT_BUCKETS = (*LATENCY_BUCKETS, 30.0, 60.0, 300.0)
#: Outcomes of ``POST /v1/decisions`` (each series exists from the start, at 0).
HTTP_DECISION_OUTCOMES = ("answered", "timeout", "invalid", "busy", "unavailable")
#: Counters that every process of a worker counts alike, because each reads the same records
#: (the policy topic): a role-``all`` worker's /metrics shows them once, not once per process
#: (:mod:`streams.runtime.exposition`).
COUNTED_IN_EVERY_PROCESS = (
    "creditline_policy_rejected_total",
    "creditline_scorecard_rejected_total",
)
#: Gauges of a share of the work, each process measuring its own (the reviews due in its
#: partitions): a role-``all`` worker's /metrics shows their sum over its fold processes.
#: The process collector's memory and descriptors are each process's own too: the worker's
#: figure is what all its processes hold (what its container is sized and limited by).
SUMMED_ACROSS_PROCESSES = (
    "creditline_status_reviews_due",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_open_fds",
)
#: Gauges a process sets only once it folds (0 until then): a role-``all`` worker's /metrics
#: shows the oldest of its folds' values, so one fold that stopped storing is not hidden behind
#: another that stores (the decider, which never folds, and a fold yet to store its first
#: batch show 0 and are left out).
OLDEST_ACROSS_FOLDS = ("creditline_last_batch_timestamp_seconds",)
#: Outcomes of ``GET /v1/decisions/{request_id}``.
HTTP_LOOKUP_OUTCOMES = ("found", "pending", "unknown", "invalid", "unavailable")


class Metrics:
    """The metric objects, registered on one registry (a fresh one per test)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        # The client library's standard process_* series (CPU seconds, resident memory, open
        # files, start time), read from /proc at each scrape: memory over time is watched,
        # and a role-all worker's page adds up its processes' (see SUMMED_ACROSS_PROCESSES).
        ProcessCollector(registry=r)
        self.info = Info("creditline_build", "Versions of this worker.", registry=r)
        self.info.info(
            {
                "version": streams.__version__,
                "python": platform.python_version(),
                "faust": _version("faust-streaming"),
                "aiokafka": _version("aiokafka"),
                "redis_py": _version("redis"),
            }
        )
        self.records_consumed = Counter(
            "creditline_records_consumed_total",
            "Records read from input topics.",
            ["topic"],
            registry=r,
        )
        self.records_applied = Counter(
            "creditline_records_applied_total",
            "Records folded into user state (events) or answered (loan requests).",
            ["topic"],
            registry=r,
        )
        self.records_duplicate = Counter(
            "creditline_records_duplicate_total",
            "Records recognised as already applied (same event_id or request_id).",
            ["topic"],
            registry=r,
        )
        self.records_dead_lettered = Counter(
            "creditline_records_dead_lettered_total",
            "Records rejected to the dead-letter topic, by reason code.",
            ["topic", "reason"],
            registry=r,
        )
        self.records_requeued = Counter(
            "creditline_records_requeued_total",
            "Records of an event batch that ended early (a stop, a rebalance, an error): left "
            "uncommitted, to be read again; consumed = applied + duplicate + dead-lettered + "
            "requeued.",
            ["topic"],
            registry=r,
        )
        self.batch_seconds = Histogram(
            "creditline_batch_processing_seconds",
            "Time to decode, fold and store one batch of events.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "creditline_batch_size_records",
            "Records per processed batch.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.event_time_lag = Histogram(
            "creditline_event_time_lag_seconds",
            "Processing time minus the event's occurred_at, when applied.",
            ["topic"],
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.store_conflicts = Counter(
            "creditline_store_conflicts_total",
            "Optimistic-concurrency conflicts on a user's state (re-read and re-folded).",
            registry=r,
        )
        self.store_retries = Counter(
            "creditline_store_retries_total",
            "Redis operations retried after an error (Redis unreachable or failing).",
            ["operation"],
            registry=r,
        )
        self.redis_seconds = Histogram(
            "creditline_redis_operation_seconds",
            "Latency of Redis round trips.",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.decisions = Counter(
            "creditline_decisions_total",
            "Loan decisions published, by outcome.",
            ["outcome"],
            registry=r,
        )
        self.decisions_by_status = Counter(
            "creditline_decisions_by_status_total",
            "Loan decisions by displayed status and effective (live) status.",
            ["displayed", "effective"],
            registry=r,
        )
        self.decision_overrides = Counter(
            "creditline_decision_overrides_total",
            "Decisions whose outcome overrode the status the app displayed.",
            registry=r,
        )
        self.decision_seconds = Histogram(
            "creditline_decision_latency_seconds",
            "From the loan request's Kafka timestamp to its decision being sent.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.scores = Histogram(
            "creditline_score",
            "Scores of users after each update.",
            buckets=SCORE_BUCKETS,
            registry=r,
        )
        self.dead_letter_storm = Gauge(
            "creditline_dead_letter_storm",
            "1 while most recent records of an agent are being dead-lettered (bad input "
            "upstream), else 0.",
            ["agent"],
            registry=r,
        )
        self.dead_letter_storms = Counter(
            "creditline_dead_letter_storms_total",
            "Dead-letter storms detected.",
            ["agent"],
            registry=r,
        )
        self.policy_info = Gauge(
            "creditline_policy_info",
            "The active policy version (value 1 on the active version's series).",
            ["version"],
            registry=r,
        )
        self.policy_rejected = Counter(
            "creditline_policy_rejected_total",
            "Policy documents read from the policy topic and rejected as invalid.",
            registry=r,
        )
        self.scorecard_info = Gauge(
            "creditline_scorecard_info",
            "The scorecard in force (value 1 on its version's series).",
            ["version"],
            registry=r,
        )
        self.scorecard_rejected = Counter(
            "creditline_scorecard_rejected_total",
            "Scorecard documents read from the policy topic and rejected as invalid.",
            registry=r,
        )
        self.scorecard_psi = Gauge(
            "creditline_scorecard_psi",
            'Population stability index of the score (characteristic="score") and of each '
            "characteristic over the worker's recent scorings, against the card's training "
            "distribution: < 0.1 stable, 0.1-0.25 watch, > 0.25 a significant shift.",
            ["version", "characteristic"],
            registry=r,
        )
        self.scorecard_scorings = Gauge(
            "creditline_scorecard_window_scorings",
            "Scorings in the stability window the PSI gauges are computed over.",
            ["version"],
            registry=r,
        )
        self.decision_pd = Histogram(
            "creditline_decision_pd",
            "Probability of default of the score behind each decision, by segment and outcome.",
            ["segment", "outcome"],
            buckets=PD_BUCKETS,
            registry=r,
        )
        self.shadow_info = Gauge(
            "creditline_shadow_info",
            "What is in shadow (value 1 on its series; none while nothing is).",
            ["candidate"],
            registry=r,
        )
        self.shadow_decisions = Counter(
            "creditline_shadow_decisions_total",
            "Requests answered by the candidate in shadow, by the live and the candidate's "
            "outcome (a disagreement when they differ).",
            ["live", "shadow"],
            registry=r,
        )
        self.shadow_approved_amount = Counter(
            "creditline_shadow_approved_amount_total",
            "Amount approved, by the live configuration and by the candidate in shadow, over "
            "the requests both answered (currency units).",
            ["side"],
            registry=r,
        )
        self.line_status_changes = Counter(
            "creditline_line_status_changes_total",
            "Effective line-status changes published, by new status.",
            ["status"],
            registry=r,
        )
        self.line_status_restatements = Counter(
            "creditline_line_status_restatements_total",
            "Users whose past status trajectory changed because an event arrived late.",
            registry=r,
        )
        self.line_status_change_interval = Histogram(
            "creditline_line_status_change_interval_seconds",
            "Event time between a user's consecutive status changes (freezes included): "
            "outside freezes, never below the policy's dwell time.",
            buckets=(
                3600,
                86400,
                3 * 86400,
                7 * 86400,
                14 * 86400,
                30 * 86400,
                90 * 86400,
                365 * 86400,
            ),
            registry=r,
        )
        self.review_lag = Histogram(
            "creditline_status_review_lag_seconds",
            "How long after a user's review instant (a freeze running out, a dwell time ending, "
            "a month or a policy starting) the review was done.",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.review_sweep_seconds = Histogram(
            "creditline_status_review_sweep_seconds",
            "Time one sweep of the review schedule took, its reviews included: the fold folds "
            "no events meanwhile, so a long sweep is followed by a larger batch.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.reviews_due = Gauge(
            "creditline_status_reviews_due",
            "Reviews due and not yet done in this worker's partitions (at the last sweep).",
            registry=r,
        )
        self.consumer_lag = Gauge(
            "creditline_consumer_lag_records",
            "Records of an input topic not yet committed by the consumer group "
            "(log-end minus committed offsets, summed over partitions).",
            ["topic"],
            registry=r,
        )
        self.http_decisions = Counter(
            "creditline_http_decision_requests_total",
            "POST /v1/decisions by outcome: answered (200), timeout (504), invalid (409, 413, "
            "415, 422), busy (429), unavailable (503).",
            ["outcome"],
            registry=r,
        )
        for outcome in HTTP_DECISION_OUTCOMES:
            self.http_decisions.labels(outcome)
        self.http_decision_wait = Histogram(
            "creditline_http_decision_wait_seconds",
            "POST /v1/decisions answered: from publishing the request to its decision "
            "arriving on the decision topic.",
            buckets=HTTP_WAIT_BUCKETS,
            registry=r,
        )
        self.http_decisions_waiting = Gauge(
            "creditline_http_decisions_waiting",
            "POST /v1/decisions waiting for their decision now (at most "
            "CREDITLINE_HTTP_MAX_IN_FLIGHT).",
            registry=r,
        )
        self.http_lookups = Counter(
            "creditline_http_decision_lookups_total",
            "GET /v1/decisions/{request_id} by outcome: found (200), pending (202), unknown "
            "(404), invalid (422), unavailable (503).",
            ["outcome"],
            registry=r,
        )
        for outcome in HTTP_LOOKUP_OUTCOMES:
            self.http_lookups.labels(outcome)
        self.memory_returned = Counter(
            "creditline_memory_returned_bytes",
            "Resident memory handed back to the operating system by releasing the C heap's "
            "free pages (glibc malloc_trim, every CREDITLINE_MEMORY_RETURN_SECONDS).",
            registry=r,
        )
        self.last_batch_timestamp = Gauge(
            "creditline_last_batch_timestamp_seconds",
            "Unix time at which the last batch of events was stored.",
            registry=r,
        )
        self.batch_limit = Gauge(
            "creditline_batch_limit_records",
            "Most records the next event batch may take (grows under a backlog).",
            registry=r,
        )
        self.batch_backfilling = Gauge(
            "creditline_batch_backfilling",
            "1 while a deep backlog takes the longer backfill batches "
            "(CREDITLINE_BATCH_BACKFILL_TARGET_SECONDS), else 0.",
            registry=r,
        )
        self.backfill_batches = Counter(
            "creditline_backfill_batches_total",
            "Event batches sized by the backfill target: taken while a deep backlog was behind "
            "the batch before (CREDITLINE_BATCH_BACKFILL_TARGET_SECONDS).",
            registry=r,
        )

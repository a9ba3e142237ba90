"""All run-time settings, read from the environment with one prefix: ``CREDITLINE_``.

This is the only module that reads configuration; everything else receives a
:class:`Settings` instance.

Longer than most modules: every setting, with the description the generated docs show.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

ENV_PREFIX = "CREDITLINE_"


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "creditline"


#: Environment variable naming an optional TOML settings file (default ``creditline.toml``
#: in the working directory, if present). The environment wins over the file.
CONFIG_FILE_ENV = f"{ENV_PREFIX}CONFIG_FILE"
DEFAULT_CONFIG_FILE = "creditline.toml"


def config_file() -> Path | None:
    """The TOML settings file in use, if any."""
    named = os.environ.get(CONFIG_FILE_ENV)
    if named:
        return Path(named)
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.is_file() else None


class Settings(BaseSettings):
    """creditline configuration: environment variables ``CREDITLINE_<FIELD>``, over an
    optional TOML file (``CREDITLINE_CONFIG_FILE``, else ``./creditline.toml``) whose keys are
    the field names in lower case (``kafka_bootstrap_servers = "…"``)."""

    # Errors never echo the input: it holds the passwords.
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", frozen=True, hide_input_in_errors=True
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then the environment, then the TOML file (if any)."""
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = config_file()
        if path is not None:
            if not path.is_file():
                raise ValueError(f"{CONFIG_FILE_ENV} names {path}, which is not a file")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    # --- connections -------------------------------------------------------------------
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers, comma separated host:port."
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_SSL"] = Field(
        "PLAINTEXT",
        description="How every Kafka client connects: PLAINTEXT (local stack), SSL (TLS), or "
        "SASL_SSL (TLS + SASL login; production).",
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = Field(
        "SCRAM-SHA-512", description="SASL mechanism with SASL_SSL."
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user with SASL_SSL.")
    kafka_sasl_password: SecretStr | None = Field(
        None, description="SASL password with SASL_SSL (secret: never printed or logged)."
    )
    kafka_ssl_cafile: Path | None = Field(
        None,
        description="PEM file of the CA(s) that signed the brokers' certificates; unset = "
        "the system's trust store.",
    )
    kafka_ssl_certfile: Path | None = Field(
        None, description="PEM client certificate (chain), when brokers require mutual TLS."
    )
    kafka_ssl_keyfile: Path | None = Field(
        None, description="PEM private key of `KAFKA_SSL_CERTFILE`."
    )
    kafka_request_timeout_seconds: float = Field(
        30.0,
        gt=0,
        description="Longest wait for a Kafka request, connecting and logging in included: "
        "an unreachable or refusing broker is an error after this, never a hang.",
    )
    redis_url: SecretStr = Field(
        SecretStr("redis://127.0.0.1:6379/0"),
        description="Redis URL (may carry credentials, hence secret); `rediss://` for TLS.",
    )
    redis_cluster: bool = Field(
        False,
        description="The Redis URL names one node of a Redis Cluster (seed node): keys are "
        "routed by hash slot; every user's keys share one slot.",
    )
    redis_min_replicas: int = Field(
        0,
        ge=0,
        description="Replicas that must acknowledge the worker's Redis writes (`WAIT`) before "
        "its Kafka offsets are committed or a decision is published; fewer within a second "
        "is retried like an outage. 1 or more: a failover to a replica loses no committed "
        "event. 0: not waited for (replication is asynchronous: a failover may lose the "
        "last writes of events already committed; `creditline replay` repairs that). Not "
        "with `REDIS_CLUSTER`.",
    )
    redis_tls_ca_file: Path | None = Field(
        None,
        description="PEM CA bundle that signs the Redis server's certificate (`rediss://` "
        "URLs); unset: the system's trust store.",
    )
    redis_tls_cert_file: Path | None = Field(
        None, description="PEM client certificate for mutual TLS with Redis (with the key file)."
    )
    redis_tls_key_file: Path | None = Field(
        None, description="PEM private key of the Redis client certificate."
    )

    # --- topics ------------------------------------------------------------------------
    topic_repayments: str = Field("credit.repayments", description="RepaymentEvent input topic.")
    topic_spending: str = Field("credit.spending", description="SpendingEvent input topic.")
    topic_assets: str = Field("credit.assets", description="AssetEvent input topic.")
    topic_loan_requests: str = Field("credit.loan-requests", description="LoanRequest input topic.")
    topic_loan_decisions: str = Field(
        "credit.loan-decisions", description="LoanDecision output topic."
    )
    topic_loan_decisions_shadow: str = Field(
        "credit.loan-decisions.shadow",
        description="The candidate's decisions while a policy or scorecard is in shadow "
        "(same schema; never the answer).",
    )
    topic_dead_letter: str = Field(
        "credit.dead-letter", description="Rejected records with error headers."
    )
    topic_line_status: str = Field(
        "credit.line-status", description="LineStatusChanged output topic."
    )
    topic_policy: str = Field(
        "credit.policy", description="Compacted topic of policy versions (1 partition)."
    )
    topic_partitions: int = Field(
        12, ge=1, description="Partitions of every topic; input topics must share it."
    )
    topic_replication_factor: int = Field(
        1, ge=1, description="Replicas of every topic (3 in production)."
    )
    topic_min_insync_replicas: int = Field(
        1,
        ge=1,
        description="min.insync.replicas of every topic: replicas that must have a record "
        "before an acks=all write succeeds (2 with 3 replicas in production).",
    )
    input_retention_ms: int = Field(
        -1,
        description="retention.ms of the input topics; -1 keeps them replayable for ever.",
    )
    output_retention_ms: int = Field(
        30 * 24 * 3600 * 1000, description="retention.ms of decisions and dead letters."
    )
    max_message_bytes: int = Field(
        8 * 1024 * 1024,
        description="max.message.bytes of our topics: large enough that an oversized "
        "record reaches the worker and is dead-lettered rather than refused upstream.",
    )

    # --- worker --------------------------------------------------------------------------
    app_id: str = Field(
        "creditline",
        description="Names the consumer groups: events are folded by this group, loan requests "
        "answered by `<app_id>-decisions`.",
    )
    worker_role: Literal["all", "events", "decisions"] = Field(
        "all",
        description="What a worker runs: the event fold (group `APP_ID`) and loan decisions "
        "(group `APP_ID-decisions`), or only one of them (`events`, `decisions`: requests "
        "never queue behind event batches). Roles can be mixed: a group is shared by every "
        "worker doing its work.",
    )
    worker_nice: int = Field(
        0,
        ge=0,
        le=19,
        description="CPU niceness the worker process adds to itself. Where `events` workers "
        "share cores with `decisions` workers (or with Kafka and Redis), 10 for the `events` "
        "workers lets loan requests and the services go first when the cores are busy.",
    )
    worker_fold: Literal["process", "inline"] = Field(
        "process",
        description="Where a worker of role `all` folds events: in a process of its own that "
        "the worker starts, stops and watches (`process`: loan requests never wait behind "
        "an event batch, and the fold falls behind under overload while requests are still "
        "answered at once), or on the worker's own event loop (`inline`: one process, but "
        "a request can wait for the batch being folded).",
    )
    worker_folds: Annotated[int, Field(ge=1, le=64)] | Literal["auto"] = Field(
        1,
        description="How many fold processes a worker of role `all` (with WORKER_FOLD=process) "
        "starts, watches and stops: they share the event topics' partitions in the worker's "
        "group, as that many `events` workers would, behind the worker's one `/metrics` and "
        "`/healthz`. `auto`: one per core the worker may use (its CPU affinity, lowered to its "
        "cgroup's CPU quota, rounded down), at most `CREDITLINE_TOPIC_PARTITIONS`. More than "
        "one folds a backlog on more cores (2 on 2 shared cores: ingest ×1.35–1.4) but each "
        "holds a batch in memory, and on cores shared with Kafka and Redis freshness at half "
        "the (larger) pace and memory over a soak did not hold their targets yet "
        "(docs/sizing.md): the default stays 1.",
    )
    worker_fold_nice: int = Field(
        19,
        ge=0,
        le=19,
        description="CPU niceness the fold process of a role-`all` worker (with "
        "WORKER_FOLD=process) adds to the worker's. When the cores are busy, loan requests "
        "go first and the fold falls behind (visibly: lag metric, alert, `status`): at 2,000 "
        "events/s on 2 shared cores, 19 cut the decisions' p99 over the echo about 3-fold "
        "against 0 (docs/sizing.md). In a container, a systemd service or its own session "
        "with autogroup, the fold yields only to its own worker; on a bare host without "
        "autogroup it yields to every other process there too: 0 turns that off.",
    )
    worker_fold_idle: bool = Field(
        False,
        description="Whether the fold process of a role-`all` worker (with WORKER_FOLD="
        "process) runs under Linux's SCHED_IDLE policy: on the CPU time the other processes "
        "leave, and a process that wakes up (the decider, Redis, Kafka) is put on the fold's "
        "core and runs at once. Under twice the fold's pace on 2 shared cores it cut the "
        "decisions' p99 from 51-73 ms (seven runs) to 33-43 (three), and at 2,000 events/s "
        "their median from 21.4 to 17.3 ms (four pairs); but at 3,500 events/s, with the "
        "cores three-quarters busy, the fold fell behind: freshness p99 951-8,148 ms against "
        "301-418 (four pairs; docs/sizing.md). Off by default, for a worker that must answer "
        "first when its cores are overloaded. "
        "Ignored where the policy does not exist.",
    )
    redis_key_prefix: str = Field(
        "cl", pattern=r"^[A-Za-z0-9_.-]{1,32}$", description="Prefix of every Redis key."
    )
    web_host: str = Field(
        "127.0.0.1",
        description="Address of /metrics, /healthz and (roles `all`, `decisions`) the HTTP "
        "decision API.",
    )
    web_port: int = Field(
        6066,
        ge=1,
        le=65535,
        description="Port of /metrics, /healthz and (roles `all`, `decisions`) the HTTP "
        "decision API.",
    )
    http_decision_wait_seconds: float = Field(
        10.0,
        gt=0,
        le=300,
        description="How long `POST /v1/decisions` waits for the request's decision to appear "
        "on the decision topic; then 504 with the request id and the URL to poll "
        "(docs/http-api.md). Keep it above SCORE_UNAVAILABLE_WAIT_SECONDS, so that a Redis "
        "outage is answered `review` rather than 504.",
    )
    http_max_in_flight: int = Field(
        500,
        ge=1,
        description="Most `POST /v1/decisions` waiting for their decision at once in one "
        "worker; beyond it 429.",
    )
    batch_max_records: int = Field(
        200_000,
        ge=1,
        description="Most events folded per batch. Batches fill only under a backlog, and "
        "then only as far as `CREDITLINE_BATCH_TARGET_SECONDS` (or, deep in one, "
        "`CREDITLINE_BATCH_BACKFILL_TARGET_SECONDS`) allows: larger ones pay each Redis "
        "round trip and script call over more events and fold more of a user's events in "
        "one visit, but hold more memory (about 2 kB a record at the peak). Loan-request "
        "batches take at most 50,000.",
    )
    batch_target_seconds: float = Field(
        5.0,
        gt=0,
        description="How long a batch should take to fold: under a backlog each batch takes "
        "as many records as the last one's pace folds in this time. A stopping worker and a "
        "rebalance do not wait for it: the batch ends after the part in hand (a few hundred "
        "users), uncommitted, and is read again. Longer targets let a fold beside live "
        "traffic fall further behind after a pause (15 s: freshness p99 at 3,500 events/s "
        "1.0-2.8 s against 0.5-0.8 s, docs/sizing.md).",
    )
    batch_backfill_target_seconds: float = Field(
        15.0,
        gt=0,
        description="Longest an event batch should take to fold while the backlog is deep: "
        "while more than a usual batch (`CREDITLINE_BATCH_TARGET_SECONDS` at the pace) is left "
        "behind a batch (a backfill, or a fold far behind), the next takes all of what is "
        "left, up to this much of it. Longer batches cost less CPU per event (15 s against "
        "5 s: about a fifth less, docs/sizing.md); a stop or a rebalance does not wait for "
        "them. Below `CREDITLINE_BATCH_TARGET_SECONDS`, that is used.",
    )
    batch_max_wait_seconds: float = Field(
        0.05,
        gt=0,
        description="Longest wait to fill an event batch while events arrive live. Under a "
        "backlog each further fetch round may wait up to 0.5 s: the records are on the broker.",
    )
    fetch_partition_bytes: int = Field(
        256 * 1024,
        ge=16 * 1024,
        description="Most bytes the events consumer asks of one partition per fetch (it "
        "asks at most 32 times this in all). It bounds the fold's read-ahead while it lags; "
        "a larger record still arrives (the broker returns the first batch whole).",
    )
    events_fetch_min_bytes: int = Field(
        1,
        ge=1,
        le=1024 * 1024,
        description="Bytes the broker gathers before it answers the events consumer's fetch "
        "(for at most events_fetch_wait_seconds). 1, the default, answers at once with what "
        "has arrived: the freshest state. More means fewer, fuller fetches: on 2 cores 32768 "
        "with a 0.01 s wait took the fold 0.40-0.45 of a core at 2,000 events/s against "
        "0.47-0.50, but freshness p99 96-156 ms against 47-115 (docs/sizing.md). The "
        "loan-request consumer never waits.",
    )
    events_fetch_wait_seconds: float = Field(
        0.5,
        gt=0,
        le=1.0,
        description="Longest the broker holds the events consumer's fetch: with "
        "events_fetch_min_bytes above 1 it is added to an event's age; with 1 it is only how "
        "long an idle fetch waits for the first event.",
    )
    compiled_core: bool = Field(
        True,
        description="Review the status machine with the compiled loop (native/, built by make "
        "install) where it is installed: the same answers as the Python core, which answers "
        "alone when this is false or the loop is not built.",
    )
    max_record_bytes: int = Field(
        64 * 1024, ge=1024, description="Larger values are dead-lettered."
    )
    event_horizon_days: int = Field(
        1826, ge=1, description="Events older than this (5 years by default) are rejected."
    )
    future_tolerance_seconds: int = Field(
        300, ge=0, description="Timestamps further in the future are rejected."
    )
    max_events_per_user: int = Field(
        10_000,
        ge=10,
        description="Most events kept per user in the horizon window (the ledger that late "
        "events are folded again with). Events beyond it are dead-lettered "
        "USER_EVENT_LIMIT and the user's requests answered `review` (EVENT_LIMIT_REACHED) "
        "while the ledger is full: one user's flood cannot grow its state without bound.",
    )
    max_open_loans_per_user: int = Field(
        200,
        ge=1,
        description="Most open loans (latest balance above zero) per user; a repayment on a new "
        "loan beyond it is dead-lettered USER_LOAN_LIMIT and the user's requests answered "
        "`review` (LOAN_LIMIT_REACHED) while that many are open. Closed and paid loans are "
        "not kept.",
    )
    request_time_tolerance_seconds: float = Field(
        300,
        ge=0,
        description="A loan request is judged at its `requested_at` if that is at most this "
        "long before it reached Kafka (the broker's append time); an older one is answered "
        "`review` with REQUEST_TIME_UNTRUSTED, so a backdated request cannot claim an ended "
        "promotion.",
    )
    policy_activation_seconds: float = Field(
        10,
        ge=0,
        description="A policy applied now takes effect this much later (every worker has read "
        "it by then), unless `policy apply --effective-from` says when.",
    )
    score_unavailable_wait_seconds: float = Field(
        5.0,
        ge=0,
        description="How long a loan request waits for Redis before it is answered "
        "`review` with SCORE_UNAVAILABLE.",
    )
    scorecard_psi_window: int = Field(
        10_000,
        ge=100,
        description="Decisions per worker task the scorecard stability gauges "
        "(`creditline_scorecard_psi`) are computed over, against the card's training "
        "distribution.",
    )
    decision_retention_days: int = Field(
        30, ge=1, description="How long a decision is remembered for idempotent redelivery."
    )
    session_timeout_seconds: float = Field(
        10.0,
        ge=6,
        description="Consumer-group session timeout: how soon the partitions of a worker "
        "that died without leaving are handed to another.",
    )
    review_interval_seconds: float = Field(
        5.0,
        gt=0,
        description="How often a worker reviews the users of its partitions whose status may "
        "change with time alone (a freeze running out, a dwell time ending, a month or a "
        "policy starting).",
    )
    memory_return_seconds: float = Field(
        10.0,
        ge=0,
        description="How often a worker process hands the memory it has freed back to the "
        "operating system (glibc's malloc_trim; elsewhere nothing); 0: never. Without it, "
        "resident memory keeps the high-water mark of the largest batch so far.",
    )
    lag_interval_seconds: float = Field(
        5.0, gt=0, description="How often the consumer-group lag metric is measured."
    )
    storm_window_records: int = Field(
        1000, ge=10, description="Records in the dead-letter storm guard's sliding window."
    )
    storm_min_records: int = Field(
        100, ge=1, description="Records seen before the storm guard may fire."
    )
    storm_ratio: float = Field(
        0.5, gt=0, le=1, description="Rejected share of the window that is a dead-letter storm."
    )
    storm_window_seconds: float = Field(
        60.0,
        gt=0,
        description="How long a record's outcome stays in the storm guard's window: a storm "
        "ends at the latest this long after its last rejected record, even on a quiet topic.",
    )
    dead_letter_log_interval_seconds: float = Field(
        10.0,
        gt=0,
        description="Rejected records are logged as one summary line per agent (counts by "
        "code) at most this often; the first after a quiet interval at once.",
    )
    reason_language: Literal["en", "zh"] = Field(
        "en", description="Language of each reason's `text` (both are always in `texts`)."
    )
    log_level: str = Field("info", description="Worker log level.")

    # --- local stack ---------------------------------------------------------------------
    stack_dir: Path = Field(
        Path(".creditline"), description="Data, logs and pid files of the local Kafka and Redis."
    )
    cache_dir: Path = Field(
        default_factory=_default_cache_dir, description="Where Kafka's jars are cached."
    )
    kafka_version: str = Field("4.1.1", description="Kafka release the local stack runs.")
    kafka_heap: str = Field("512m", description="JVM heap of the local broker.")

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _non_empty_servers(cls, value: str) -> str:
        servers = [s.strip() for s in value.split(",") if s.strip()]
        if not servers:
            raise ValueError("at least one host:port is required")
        return ",".join(servers)

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        scheme = urlsplit(self.redis_url.get_secret_value()).scheme
        tls_files = (self.redis_tls_ca_file, self.redis_tls_cert_file, self.redis_tls_key_file)
        if scheme not in ("redis", "rediss"):
            raise ValueError("CREDITLINE_REDIS_URL must start with redis:// or rediss://")
        if any(tls_files) and scheme != "rediss":
            raise ValueError("Redis TLS files need a rediss:// CREDITLINE_REDIS_URL")
        if (self.redis_tls_cert_file is None) != (self.redis_tls_key_file is None):
            raise ValueError("a Redis client certificate needs its key file, and vice versa")
        if self.redis_min_replicas and self.redis_cluster:
            raise ValueError(
                "REDIS_MIN_REPLICAS is not supported with REDIS_CLUSTER (WAIT must follow the "
                "writes on each node's connection); use the servers' min-replicas-to-write"
            )
        if self.topic_min_insync_replicas > self.topic_replication_factor:
            raise ValueError(
                "TOPIC_MIN_INSYNC_REPLICAS cannot exceed TOPIC_REPLICATION_FACTOR: "
                "no acks=all write could succeed"
            )
        if self.kafka_security_protocol == "SASL_SSL" and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError("SASL_SSL needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD")
        if (self.kafka_ssl_certfile is None) != (self.kafka_ssl_keyfile is None):
            raise ValueError("KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE go together")
        return self

    @property
    def events_group(self) -> str:
        """The consumer group that folds the event topics (every role that folds events)."""
        return self.app_id

    @property
    def decisions_group(self) -> str:
        """The consumer group that answers loan requests (every role that answers them)."""
        return f"{self.app_id}-decisions"

    @property
    def faust_app_id(self) -> str:
        """The id of the worker's Faust app: it names only Faust's (unused) data directory,
        since Faust runs no Kafka consumer and joins no group."""
        return f"{self.app_id}-{self.worker_role}"

    @property
    def consumer_groups(self) -> tuple[str, ...]:
        """Every consumer group this worker's role joins."""
        return {
            "all": (self.events_group, self.decisions_group),
            "events": (self.events_group,),
            "decisions": (self.decisions_group,),
        }[self.worker_role]

    @property
    def input_topics(self) -> tuple[str, str, str]:
        """The event topics folded into user state."""
        return (self.topic_repayments, self.topic_spending, self.topic_assets)

    @property
    def redis_endpoint(self) -> tuple[str, int]:
        """Host and port of the Redis URL, for the local stack and error messages."""
        parts = urlsplit(self.redis_url.get_secret_value())
        return parts.hostname or "127.0.0.1", parts.port or 6379

    @property
    def redis_url_redacted(self) -> str:
        """The Redis URL with any password replaced, safe to print."""
        parts = urlsplit(self.redis_url.get_secret_value())
        if parts.password is None:
            return parts.geturl()
        netloc = f"{parts.username or ''}:***@{parts.hostname}:{parts.port or 6379}"
        return parts._replace(netloc=netloc).geturl()

    @property
    def kafka_security_summary(self) -> str:
        """How Kafka clients connect, safe to print (no password)."""
        if self.kafka_security_protocol == "PLAINTEXT":
            return "PLAINTEXT"
        trust = f"CA {self.kafka_ssl_cafile}" if self.kafka_ssl_cafile else "system CAs"
        if self.kafka_security_protocol == "SSL":
            return f"SSL, trusting {trust}"
        return (
            f"SASL_SSL, {self.kafka_sasl_mechanism} as {self.kafka_sasl_username}, trusting {trust}"
        )

    @property
    def kafka_endpoints(self) -> list[tuple[str, int]]:
        """Each bootstrap server as (host, port)."""
        endpoints = []
        for server in self.kafka_bootstrap_servers.split(","):
            host, _, port = server.rpartition(":")
            endpoints.append((host or "127.0.0.1", int(port or 9092)))
        return endpoints


def settings_problems(error: ValidationError) -> str:
    """A settings validation error as one line naming the variables (never their values)."""
    return "; ".join(
        (f"{ENV_PREFIX}{'_'.join(map(str, e['loc'])).upper()}: " if e["loc"] else "")
        + e["msg"].removeprefix("Value error, ")
        for e in error.errors(include_input=False, include_url=False)
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()

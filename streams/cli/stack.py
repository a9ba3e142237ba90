"""Local stack commands: up, down, status, topics, and the Redis and Kafka ACLs creditline needs."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from streams.cli.root import (
    JsonOption,
    app,
    console,
    err,
    fail,
    run,
)
from streams.settings import Settings, get_settings


# ---- local stack ---------------------------------------------------------------------------
@app.command(rich_help_panel="Local stack")
def up(
    brokers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Kafka nodes (combined broker+controller). 3 gives replication factor 3 "
            "and min.insync.replicas 2; node i listens on the configured port + 2(i-1).",
        ),
    ] = 1,
) -> None:
    """Start a local Kafka (KRaft) and Redis on loopback unless reachable, and create topics."""
    from streams.adapters.kafka.admin import ensure_topics
    from streams.devtools.stack import LocalStack, StackError
    from streams.devtools.stack.kafka import replication_for

    settings = get_settings()
    stack = LocalStack(settings)
    try:
        console.print(stack.start_redis())
        if not stack.kafka_jars_cached():
            console.print(
                f"resolving Kafka {settings.kafka_version}'s jars with Maven into "
                f"{stack.kafka_libs} (first run only: a minute or two)…"
            )
        console.print(stack.start_kafka(brokers))
    except StackError as exc:
        fail(str(exc))
    if brokers > 1:
        # Topics get the cluster's replication unless it was configured explicitly.
        factor, min_isr = replication_for(brokers)
        defaults = {"topic_replication_factor": factor, "topic_min_insync_replicas": min_isr}
        unset = {k: v for k, v in defaults.items() if k not in settings.model_fields_set}
        settings = settings.model_copy(update=unset)
        servers = stack.kafka_cluster(brokers).bootstrap_servers
        console.print(
            f"workers and clients: CREDITLINE_KAFKA_BOOTSTRAP_SERVERS={servers} "
            f"CREDITLINE_TOPIC_REPLICATION_FACTOR={settings.topic_replication_factor} "
            f"CREDITLINE_TOPIC_MIN_INSYNC_REPLICAS={settings.topic_min_insync_replicas}"
        )
    states = run(ensure_topics(settings))
    created = [s.name for s in states if s.created_now]
    console.print(f"topics ready ({len(states)}; created {len(created)})")


@app.command(rich_help_panel="Local stack")
def down() -> None:
    """Stop the Kafka nodes and Redis that `creditline up` started (data is kept)."""
    from streams.devtools.stack import LocalStack

    stack = LocalStack(get_settings())
    for line in stack.stop_kafka():
        console.print(line)
    console.print(stack.stop("redis"))


@app.command(rich_help_panel="Local stack")
def status(as_json: JsonOption = False) -> None:
    """Report whether Kafka and Redis answer and who started them: Kafka must answer a
    metadata request and Redis PING, each as the configured user with the configured
    security (TLS, SASL, credentials)."""
    from streams.adapters.kafka.client import kafka_problem
    from streams.adapters.redis.client import redis_problem
    from streams.devtools.stack import LocalStack

    settings = get_settings()
    services = LocalStack(settings).status()
    redis_error = asyncio.run(redis_problem(settings))
    kafka_error = asyncio.run(kafka_problem(settings))
    lag = asyncio.run(_consumer_lag(settings)) if kafka_error is None else {}
    if as_json:
        console.print_json(
            json.dumps(
                [
                    {
                        "name": s.name,
                        "address": s.address,
                        "reachable": s.reachable,
                        "pid": s.pid,
                        "managed": s.managed,
                        **({"error": redis_error} if s.name == "redis" else {}),
                        **({"error": kafka_error} if s.name.startswith("kafka") else {}),
                        **({"lag": lag} if s.name.startswith("kafka") and lag else {}),
                    }
                    for s in services
                ]
            )
        )
    else:
        table = Table("service", "address", "reachable", "started by creditline", "log")
        for s in services:
            table.add_row(
                s.name,
                s.address,
                "[green]yes[/]" if s.reachable else "[red]no[/]",
                f"pid {s.pid}" if s.managed else "no",
                str(s.log) if s.managed else "",
            )
        console.print(table)
        console.print(f"redis url: {settings.redis_url_redacted}")
        console.print(f"kafka security: {settings.kafka_security_summary}", soft_wrap=True)
        if lag:
            behind = Table("input topic", "consumer group", "records not yet processed")
            for topic, row in lag.items():
                behind.add_row(topic, row["group"], f"{row['records']:,}")
            console.print(behind)
    for problem in (kafka_error, redis_error):
        if problem is not None:
            err.print(f"[bold red]error:[/] {escape(problem)}", soft_wrap=True)
    if redis_error or kafka_error or not all(s.reachable for s in services):
        raise typer.Exit(1)


async def _consumer_lag(settings: Settings) -> dict[str, dict[str, Any]]:
    """Per input topic, the group that processes it and how many records it has not yet
    committed (the fold's backlog on the event topics); {} when it cannot be measured."""
    from streams.adapters.kafka.lag import LagMonitor
    from streams.metrics import Metrics

    monitor = LagMonitor(settings, Metrics())
    try:
        await monitor.start()
        lag = await monitor.measure()
    except Exception:  # status reports what it can; Kafka's own error is printed already
        return {}
    finally:
        await monitor.stop()
    return {t: {"group": monitor.group_of[t], "records": lag.get(t, 0)} for t in monitor.topics}


@app.command("redis-acl", rich_help_panel="Local stack")
def redis_acl() -> None:
    """Print the ACL SETUSER line for creditline's Redis user: its key prefix and only the
    commands it sends. Add a password (`>secret`) before applying it."""
    from streams.adapters.redis.client import acl_setuser_line

    console.print(acl_setuser_line(get_settings()), markup=False, soft_wrap=True)


@app.command("kafka-acls", rich_help_panel="Local stack")
def kafka_acls(
    operator: Annotated[
        str, typer.Option(help="The operators' principal (the worker's is the SASL user's).")
    ] = "User:creditline-ops",
    config: Annotated[
        str, typer.Option(help="--command-config file of a super user for kafka-acls.")
    ] = "admin.properties",
) -> None:
    """Print the `kafka-acls` commands granting the worker's principal, and the operators',
    exactly what creditline needs on the configured topics and groups."""
    from streams.devtools.kafka_acls import acl_rules, kafka_acls_commands

    settings = get_settings()
    rules = acl_rules(settings, operator)
    for line in kafka_acls_commands(rules, settings.kafka_bootstrap_servers, config):
        console.print(line, markup=False, soft_wrap=True)


@app.command(rich_help_panel="Local stack")
def topics(
    create: Annotated[
        bool,
        typer.Option(
            "--create", help="Create the missing topics (with the configured replication)."
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """List creditline's topics with their partition counts and retention (missing ones
    as such); with --create, create the missing ones first."""
    from streams.adapters.kafka.admin import describe_topics, ensure_topics
    from streams.topics import Topics

    settings = get_settings()
    states = run(ensure_topics(settings) if create else describe_topics(settings))
    specs = {s.name: s for s in Topics.from_settings(settings).specs(settings)}
    rows = [
        {
            "topic": s.name,
            "partitions": s.partitions,
            "created": s.created_now,
            "exists": s.partitions > 0,
            "retention.ms": specs[s.name].config.get("retention.ms"),
        }
        for s in states
    ]
    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = Table("topic", "partitions", "retention.ms", "created now")
    for row in rows:
        table.add_row(
            row["topic"],
            str(row["partitions"]) if row["exists"] else "[red]missing[/]",
            str(row["retention.ms"]),
            "yes" if row["created"] else "",
        )
    console.print(table)
    if not all(row["exists"] for row in rows):
        err.print("some topics are missing: `creditline topics --create` creates them")


# ---- worker --------------------------------------------------------------------------------

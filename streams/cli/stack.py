"""Local stack commands: up, down, status, topics, and the Redis and Kafka ACLs creditline needs."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from streams.settings import get_settings

if TYPE_CHECKING:
    pass
from streams.cli.app import (
    JsonOption,
    app,
    console,
    err,
    fail,
    run,
)


# ---- local stack ---------------------------------------------------------------------------
@app.command()
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


@app.command()
def down() -> None:
    """Stop the Kafka nodes and Redis that `creditline up` started (data is kept)."""
    from streams.devtools.stack import LocalStack

    stack = LocalStack(get_settings())
    for line in stack.stop_kafka():
        console.print(line)
    console.print(stack.stop("redis"))


@app.command()
def status(as_json: JsonOption = False) -> None:
    """Report whether Kafka and Redis are reachable and who started them; Redis must also
    answer PING as the configured user (TLS and credentials included)."""
    from streams.adapters.redis.client import redis_problem
    from streams.devtools.stack import LocalStack

    settings = get_settings()
    services = LocalStack(settings).status()
    redis_error = asyncio.run(redis_problem(settings))
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
    if redis_error is not None:
        err.print(f"[bold red]error:[/] {redis_error}", soft_wrap=True)
    if redis_error is not None or not all(s.reachable for s in services):
        raise typer.Exit(1)


@app.command("redis-acl")
def redis_acl() -> None:
    """Print the ACL SETUSER line for creditline's Redis user: its key prefix and only the
    commands it sends. Add a password (`>secret`) before applying it."""
    from streams.adapters.redis.client import acl_setuser_line

    console.print(acl_setuser_line(get_settings()), markup=False, soft_wrap=True)


@app.command("kafka-acls")
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


@app.command()
def topics(as_json: JsonOption = False) -> None:
    """Create missing topics and list them with partition counts."""
    from streams.adapters.kafka.admin import ensure_topics
    from streams.topics import Topics

    settings = get_settings()
    states = run(ensure_topics(settings))
    specs = {s.name: s for s in Topics.from_settings(settings).specs(settings)}
    rows = [
        {
            "topic": s.name,
            "partitions": s.partitions,
            "created": s.created_now,
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
            str(row["partitions"]),
            str(row["retention.ms"]),
            "yes" if row["created"] else "",
        )
    console.print(table)


# ---- worker --------------------------------------------------------------------------------

"""The ``creditline`` command's root: the Typer app, its groups, and what every command shares
(one-line failures with documented exit codes, JSON output, the policy history)."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from streams.settings import Settings, get_settings

if TYPE_CHECKING:
    from rich.progress import Progress


app = typer.Typer(
    name="creditline",
    help="Real-time credit-line scorer: Kafka events → live scores in Redis → loan decisions.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    rich_markup_mode="markdown",
)
schemas_app = typer.Typer(help="The wire contract's JSON Schema files.", no_args_is_help=True)
app.add_typer(schemas_app, name="schemas", rich_help_panel="Policy, dead letters and the contract")
policy_app = typer.Typer(help="The run-time credit policy.", no_args_is_help=True)
app.add_typer(policy_app, name="policy", rich_help_panel="Policy, dead letters and the contract")
dlq_app = typer.Typer(help="Dead-lettered records: inspect and re-drive.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq", rich_help_panel="Policy, dead letters and the contract")
console = Console()
err = Console(stderr=True)

#: Set while a command runs with ``--json``: its failures are JSON too.
_json_output = False


def _remember_json(value: bool) -> bool:
    global _json_output
    _json_output = _json_output or value
    return value


JsonOption = Annotated[
    bool, typer.Option("--json", help="Machine-readable output.", callback=_remember_json)
]


#: Exit codes, documented in docs/commands.md: 0 ok, 1 failure, and these.
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_OPERATOR = 4

#: Help panels grouping the commands.
PANEL_STACK = "Local stack"
PANEL_RUN = "Run"
PANEL_LOANS = "Events and loans"
PANEL_STATE = "State and decisions"
PANEL_OPS = "Policy, dead letters and the contract"


def _version(value: bool) -> None:
    if value:
        from streams import __version__

        console.print(f"creditline {__version__}", markup=False)
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="A TOML settings file (keys are the settings' names, e.g. "
            "kafka_bootstrap_servers); the environment wins over it. Default: "
            "CREDITLINE_CONFIG_FILE, else ./creditline.toml if present.",
        ),
    ] = None,
    bootstrap_server: Annotated[
        str | None,
        typer.Option(
            "--bootstrap-server",
            help="Kafka bootstrap servers, host:port[,…] (wins over the environment).",
        ),
    ] = None,
) -> None:
    """Real-time credit-line scorer: Kafka events → live scores in Redis → loan decisions."""
    import os

    from streams.settings import CONFIG_FILE_ENV, ENV_PREFIX

    if config is not None:
        if not config.is_file():
            fail(f"--config {config}: no such file", EXIT_USAGE)
        os.environ[CONFIG_FILE_ENV] = str(config)
    if bootstrap_server is not None:
        os.environ[f"{ENV_PREFIX}KAFKA_BOOTSTRAP_SERVERS"] = bootstrap_server
    # Commands other than the worker report Kafka failures themselves, in one line: the
    # client library's own connection errors would only repeat them on stderr.
    if ctx.invoked_subcommand != "worker":
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


def progress_bar(rate_unit: str, *, quiet: bool) -> Progress:
    """A progress bar on stderr for a long job (its task's description, done of total, the
    share, ``rate`` field + ``rate_unit``, time left); nothing shown when ``quiet`` (JSON)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}" + rate_unit),
        TimeRemainingColumn(),
        console=err,
        disable=quiet,
    )


def fail(message: str, code: int = 1) -> NoReturn:
    """End the command with one line saying why (a JSON object with ``--json``)."""
    if _json_output:
        console.print_json(json.dumps({"error": message, "exit_code": code}))
    else:
        # One line, however long: it is read in logs and terminals alike.
        err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def parse_instant(text: str, option: str) -> datetime:
    """An RFC 3339 time with an offset, ``now``, ``yesterday``, or a duration ago (``30m``,
    ``2h``, ``7d``); anything else ends the command with a usage error naming ``option``."""
    from streams.core.dead_letters import parse_since

    now = datetime.now(UTC)
    if text == "now":
        return now
    if text == "yesterday":
        return now - timedelta(days=1)
    try:
        return parse_since(text, now)
    except ValueError:
        fail(
            f"{option} {text!r}: expected an RFC 3339 time with an offset (e.g. "
            "2026-11-30T08:00:00Z), now, yesterday, or a duration ago like 30m, 2h, 7d",
            EXIT_USAGE,
        )


def invalid(what: str, error: Exception) -> NoReturn:
    """End the command on invalid input: one line naming the fields at fault."""
    from pydantic import ValidationError

    if isinstance(error, ValidationError):
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or what}: {e['msg']}"
            for e in error.errors(include_url=False, include_input=False)
        )
        fail(f"invalid {what}: {problems}", EXIT_USAGE)
    fail(f"invalid {what}: {error}", EXIT_USAGE)


def run(coro: Any) -> Any:
    from aiokafka.errors import KafkaError

    from streams.adapters.redis.client import REDIS_ERRORS, describe_redis_error
    from streams.adapters.redis.errors import StoreRefused, StoreUnavailable
    from streams.errors import CreditlineError, Unavailable

    try:
        return asyncio.run(coro)
    except (StoreRefused, StoreUnavailable) as exc:
        # One line, no traceback: redis-py's messages never carry the password, and the
        # description scrubs it anyway.
        fail(describe_redis_error(get_settings(), exc), exc.exit_code)
    except CreditlineError as exc:
        fail(str(exc), exc.exit_code)
    except REDIS_ERRORS as exc:
        fail(describe_redis_error(get_settings(), exc), Unavailable.exit_code)
    except (OSError, KafkaError) as exc:
        fail(f"{type(exc).__name__}: {exc}", Unavailable.exit_code)


def plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float):
        return round(value, 6)
    return value


async def policy_timeline(settings: Settings) -> Any:
    """Every valid policy version on the policy topic with when it takes effect (the shipped
    default before the first)."""
    from streams.runtime import jobs

    return await jobs.policy_timeline(settings)


async def active_policy(settings: Settings) -> Any:
    """The policy in force now."""
    return (await policy_timeline(settings)).at(datetime.now(UTC))


def report_published(kind: str, version: str, published: Any) -> None:
    """Say what ``policy apply`` / ``scorecard apply`` published (or that the version was
    already applied, which publishes nothing)."""
    when = published.effective_from.isoformat()
    if not published.new:
        console.print(f"{kind} {version} was already applied (in effect from {when})")
        return
    console.print(f"applied {kind} {version} (offset {published.offset}), in effect from {when}")

"""The ``creditline`` command's root: the Typer app, its groups, and what every command shares
(one-line failures with documented exit codes, JSON output, the policy history)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from streams.settings import Settings, get_settings

if TYPE_CHECKING:
    pass


app = typer.Typer(
    name="creditline",
    help="Real-time credit-line scorer: Kafka events → live scores in Redis → loan decisions.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
schemas_app = typer.Typer(help="The wire contract's JSON Schema files.", no_args_is_help=True)
app.add_typer(schemas_app, name="schemas")
policy_app = typer.Typer(help="The run-time credit policy.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
dlq_app = typer.Typer(help="Dead-lettered records: inspect and re-drive.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")
console = Console()
err = Console(stderr=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


@app.callback()
def _quiet_libraries(ctx: typer.Context) -> None:
    """Commands other than the worker report Kafka failures themselves, in one line: the
    client library's own connection errors would only repeat them on stderr."""
    if ctx.invoked_subcommand != "worker":
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


def fail(message: str, code: int = 1) -> None:
    # One line, however long: it is read in logs and terminals alike.
    err.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code)


def run(coro: Any) -> Any:
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

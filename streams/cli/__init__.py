"""``creditline``: bring the local stack up, run the worker, publish events, ask for loans.

A package of small command modules, each registering its commands on the root app
(:mod:`streams.cli.root`): parse → call the services and adapters → render.
"""

from __future__ import annotations

from streams.cli import (
    dlq,
    loans,
    policy,
    schemas,
    scorecard,
    shadow,
    stack,
    state,
    whatif,
    worker,
)
from streams.cli.root import app, err

__all__ = [
    "app",
    "dlq",
    "loans",
    "main",
    "policy",
    "schemas",
    "scorecard",
    "shadow",
    "stack",
    "state",
    "whatif",
    "worker",
]


def main() -> None:
    """Entry point of the ``creditline`` command."""
    from pydantic import ValidationError

    from streams.settings import settings_problems

    try:
        app()
    except ValidationError as exc:
        # Raised outside any command's context (by get_settings), so not via _fail.
        err.print(f"[bold red]error:[/] invalid settings: {settings_problems(exc)}", soft_wrap=True)
        raise SystemExit(2) from None

"""The run-time credit policy: validate, apply (at an instant), show, history."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from streams.settings import get_settings

if TYPE_CHECKING:
    pass
from streams.cli.root import (
    JsonOption,
    active_policy,
    console,
    fail,
    policy_app,
    report_published,
    run,
)


def _read_policy_file(path: Path) -> Any:
    from streams.core.policy import InvalidPolicy, parse_policy

    try:
        return parse_policy(path.read_text())
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")
    except InvalidPolicy as exc:
        fail(f"{path} is not a valid policy; nothing was applied:\n{exc}")


@policy_app.command("validate")
def policy_validate(file: Annotated[Path, typer.Argument(help="YAML or JSON policy.")]) -> None:
    """Check a policy document without applying it."""
    policy = _read_policy_file(file)
    console.print(f"{file}: valid policy {policy.version}")


@policy_app.command("apply")
def policy_apply(
    file: Annotated[Path, typer.Argument(help="YAML or JSON policy.")],
    by: Annotated[str | None, typer.Option("--by", help="Who applies it (audit).")] = None,
    comment: Annotated[str | None, typer.Option(help="Why (audit).")] = None,
    effective_from: Annotated[
        str | None,
        typer.Option(
            "--effective-from",
            help="RFC 3339 time it takes effect (default: CREDITLINE_POLICY_ACTIVATION_SECONDS "
            "from now). Never in the past: a policy does not rewrite history.",
        ),
    ] = None,
    shadow: Annotated[
        bool,
        typer.Option(
            "--shadow",
            help="Install it in shadow instead: it answers every request beside the live "
            "policy (on the shadow topic), deciding nothing, until `shadow promote`.",
        ),
    ] = False,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes",
            "-y",
            help="Apply without the what-if of the last 7 days and the confirmation (for scripts).",
        ),
    ] = False,
) -> None:
    """Validate a policy and publish it; running workers switch to it, without a restart, at
    the instant it takes effect (every status and decision from then on follows it)."""
    from streams.adapters.kafka.policies import publish_policy, publish_shadow
    from streams.core.policy import InvalidPolicy

    policy = _read_policy_file(file)
    if shadow:
        try:
            run(publish_shadow(get_settings(), policy=policy, applied_by=by, comment=comment))
        except InvalidPolicy as exc:
            fail(str(exc))
        console.print(
            f"policy {policy.version} in shadow: compare with `creditline shadow status`, "
            "then `shadow promote` or `shadow stop`"
        )
        return
    effective = None
    if effective_from is not None:
        try:
            effective = datetime.fromisoformat(effective_from)
        except ValueError:
            fail(f"--effective-from is not an RFC 3339 time: {effective_from!r}", 2)
        if effective is not None and effective.tzinfo is None:
            fail("--effective-from needs an offset, e.g. 2026-12-01T00:00:00+08:00", 2)
    from streams.cli.whatif import confirm_live

    confirm_live(f"policy {policy.version}", policy=policy, yes=yes)
    try:
        published = run(publish_policy(get_settings(), policy, by, comment, effective))
    except InvalidPolicy as exc:
        fail(str(exc))
        return
    report_published("policy", policy.version, published)


@policy_app.command("show")
def policy_show(as_json: JsonOption = False) -> None:
    """Print the active policy (the latest valid version applied, else the default)."""
    from streams.core.policy import policy_json

    policy = run(active_policy(get_settings()))
    if as_json:
        console.print_json(policy_json(policy))
        return
    import yaml

    console.print(f"# active policy {policy.version}")
    console.print(
        yaml.safe_dump(policy.model_dump(mode="json"), sort_keys=False, allow_unicode=True),
        markup=False,
    )


@policy_app.command("history")
def policy_history(as_json: JsonOption = False) -> None:
    """Every policy version applied, oldest first, with who and when; rejected ones too."""
    from streams.adapters.kafka.policies import read_policy_history

    records = [
        r for r in run(read_policy_history(get_settings())) if r.kind == "policy" and not r.shadow
    ]
    rows = [
        {
            "offset": r.offset,
            "version": r.version,
            "applied_at": r.applied_at.isoformat() if r.applied_at else None,
            "effective_from": r.effective_from.isoformat() if r.effective_from else None,
            "applied_by": r.applied_by,
            "comment": r.comment,
            "valid": r.policy is not None,
            "problems": list(r.problems),
        }
        for r in records
    ]
    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = Table("offset", "version", "applied at", "in effect from", "by", "comment", "valid")
    for row in rows:
        table.add_row(
            str(row["offset"]),
            str(row["version"]),
            str(row["applied_at"] or ""),
            str(row["effective_from"] or ""),
            str(row["applied_by"] or ""),
            str(row["comment"] or ""),
            "yes" if row["valid"] else "[red]no[/]",
        )
    console.print(table if rows else "no policy applied yet: the default policy is active")


# ---- schemas -------------------------------------------------------------------------------

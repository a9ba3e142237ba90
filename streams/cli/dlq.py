"""Dead letters: list, show and re-drive them, printing what producers sent inertly."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from streams.settings import get_settings

if TYPE_CHECKING:
    from streams.adapters.kafka.dead_letters import DeadLetterPage
from streams.cli.root import (
    JsonOption,
    console,
    dlq_app,
    err,
    fail,
    run,
)


def _preview(value: bytes | None, width: int = 60) -> str:
    if value is None:
        return "(null)"
    text = value[:width].decode("utf-8", errors="backslashreplace")
    return text + (f"… ({len(value)} bytes)" if len(value) > width else "")


def _inert(text: str) -> Text:
    """Producer-controlled text, inert: escaped controls, no markup, no emoji codes."""
    from streams.core.inert import inert

    return Text(inert(text))


def _print_json_ascii(doc: Any) -> None:
    console.print_json(json.dumps(doc), ensure_ascii=True)


SinceOption = Annotated[
    str | None,
    typer.Option(
        help="Only dead letters rejected since then: a duration back from now (30m, 2h, 7d) "
        "or an RFC 3339 time (2026-11-30T08:00:00Z). Default: the whole topic."
    ),
]
LimitOption = Annotated[
    int,
    typer.Option(
        min=1, help="Read only the newest this many dead letters of that window (per call)."
    ),
]


def _since(text: str | None) -> datetime | None:
    from rich.markup import escape

    from streams.core.dead_letters import parse_since

    if text is None:
        return None
    try:
        return parse_since(text, datetime.now(UTC))
    except ValueError as exc:
        fail(escape(f"--since: {exc}"))
        raise AssertionError("unreachable") from exc  # pragma: no cover


def _window(page: DeadLetterPage) -> str:
    """Which dead letters were read, in words."""
    since = f" since {page.since.isoformat()}" if page.since else ""
    return f"the newest {page.read} of {page.in_window} dead letters{since}"


def _not_read_note(page: DeadLetterPage) -> None:
    """Say so on stderr when older dead letters of the window were left unread."""
    if page.not_read:
        since = f" since {page.since.isoformat()}" if page.since else ""
        err.print(
            f"{page.not_read} older dead letters{since} were not read: raise --limit or "
            "narrow --since",
            markup=False,
            highlight=False,
        )


@dlq_app.command("list")
def dlq_list(
    code: Annotated[str | None, typer.Option(help="Only this reject code.")] = None,
    since: SinceOption = None,
    limit: LimitOption = 100,
    as_json: JsonOption = False,
) -> None:
    """Dead-lettered records with their reasons and where they came from (a bounded read: the
    newest --limit of those rejected since --since)."""
    from collections import Counter

    from schemas import dead_letter
    from streams.adapters.kafka.dead_letters import read_dead_letters

    settings = get_settings()
    page = run(
        read_dead_letters(settings, since=_since(since), limit=limit, code=code, values=False)
    )
    letters = page.letters
    counts = Counter(letter.code for letter in letters)
    rows = [
        {
            "id": x.id,
            "code": x.code,
            "source": x.source,
            "message": x.header(dead_letter.HEADER_ERROR_MESSAGE),
            "rejected_at": x.header(dead_letter.HEADER_REJECTED_AT),
            "bytes": x.size,
        }
        for x in letters
    ]
    if as_json:
        _print_json_ascii(
            {
                "total": len(letters),
                "by_code": counts,
                "records": rows,
                "read": page.read,
                "in_window": page.in_window,
                "not_read": page.not_read,
                "since": page.since.isoformat() if page.since else None,
                "limit": limit,
            }
        )
        return
    title = f"{len(letters)} dead letters" + (f" with code {code}" if code else "")
    table = Table(
        "id",
        "code",
        "source",
        "message",
        "rejected at",
        "bytes",
        title=_inert(f"{title}, among {_window(page)}"),
    )
    for row in rows:
        table.add_row(
            *(_inert(str(row[k])) for k in ("id", "code", "source", "message", "rejected_at")),
            str(row["bytes"]),
        )
    console.print(table)
    console.print(
        _inert("by code: " + ", ".join(f"{c} {n}" for c, n in counts.most_common())),
        highlight=False,
    )
    _not_read_note(page)


def _letter_id(text: str) -> tuple[int, int]:
    """``partition:offset`` as two integers (or a clear error)."""
    from rich.markup import escape

    partition, _, offset = text.partition(":")
    if not (partition.isdigit() and offset.isdigit()):
        fail(escape(f"{text!r} is not a dead-letter id (partition:offset, e.g. 3:1207)"))
    return int(partition), int(offset)


@dlq_app.command("show")
def dlq_show(
    record_id: Annotated[str, typer.Argument(help="partition:offset in the dead-letter topic.")],
    as_json: JsonOption = False,
) -> None:
    """One dead letter: its headers and value (read at its offset, nothing else)."""
    from streams.adapters.kafka.dead_letters import read_dead_letters_at

    found = run(read_dead_letters_at(get_settings(), [_letter_id(record_id)]))
    letter = next(iter(found.values()), None)
    if letter is None:
        fail(f"no dead letter {record_id}; `creditline dlq list` shows the ids")
        return
    headers = [(k, v.decode(errors="backslashreplace")) for k, v in letter.headers]
    doc = {
        "id": letter.id,
        "key": _preview(letter.key, 200),
        "value": _preview(letter.value, 2000),
        "headers": dict(headers),
    }
    if as_json:
        _print_json_ascii(doc)
        return
    table = Table(show_header=False, title=_inert(f"dead letter {letter.id}"))
    for name, value in headers:  # every one, also repeated names
        table.add_row(_inert(name), _inert(value))
    table.add_row("key", _inert(doc["key"]))
    table.add_row("value", _inert(doc["value"]))
    console.print(table)


def _read_fixes(path: Path) -> dict[str, bytes]:
    """Corrected values by dead-letter id, from JSON lines ``{"id": "p:o", "value": {...}}``."""
    fixes: dict[str, bytes] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")
        return fixes
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            fixes[str(entry["id"])] = json.dumps(entry["value"]).encode()
        except (ValueError, KeyError, TypeError):
            fail(f'{path} line {number}: expected {{"id": "p:o", "value": {{...}}}}')
    return fixes


@dlq_app.command("redrive")
def dlq_redrive(
    code: Annotated[str | None, typer.Option(help="Re-publish the records with this code.")] = None,
    everything: Annotated[
        bool, typer.Option("--all", help="Re-publish every dead letter read.")
    ] = False,
    fixed: Annotated[
        Path | None,
        typer.Option(
            help='JSON lines {"id": "p:o", "value": {...}}: publish these '
            "corrected values (only those records, read at their offsets)."
        ),
    ] = None,
    since: SinceOption = None,
    limit: LimitOption = 100,
    as_json: JsonOption = False,
) -> None:
    """Re-publish dead letters to their source topics, as they were or corrected. Only this
    application's input topics are written; other sources are skipped and reported."""
    from rich.progress import Progress

    from streams.adapters.kafka.dead_letters import read_dead_letters, read_dead_letters_at, redrive
    from streams.topics import Topics

    if not (code or everything or fixed):
        fail("say which records: --code CODE, --all, or --fixed FILE")
    settings = get_settings()
    replacements: dict[str, bytes] = {}
    page: DeadLetterPage | None = None
    if fixed is not None:
        replacements = _read_fixes(fixed)
        found = run(read_dead_letters_at(settings, [_letter_id(i) for i in replacements]))
        letters = [found[i] for i in replacements if i in found]
        unknown = set(replacements) - set(found)
        if unknown:
            fail(f"no dead letters with ids {sorted(unknown)}")
    else:
        page = run(read_dead_letters(settings, since=_since(since), limit=limit, code=code))
        letters = page.letters
    with Progress(console=err, disable=as_json) as progress:
        task = progress.add_task("re-driving", total=len(letters))
        report = run(
            redrive(
                settings,
                letters,
                replacements=replacements,
                on_progress=lambda done: progress.update(task, completed=done),
            )
        )
    if as_json:
        doc: dict[str, Any] = {
            "redriven": report.total,
            "topics": dict(report.sent),
            "skipped": len(report.skipped),
            "skipped_ids": report.skipped,
        }
        if page is not None:
            doc.update(read=page.read, in_window=page.in_window, not_read=page.not_read)
        console.print_json(json.dumps(doc), ensure_ascii=True)
        return
    where = ", ".join(f"{topic} {n}" for topic, n in sorted(report.sent.items()))
    console.print(
        f"re-published {report.total} records" + (f": {where}" if where else ""),
        markup=False,
        highlight=False,
    )
    if report.skipped:
        err.print(
            f"skipped {len(report.skipped)} dead letters whose source is not an input topic of "
            f"this application (only {', '.join(Topics.from_settings(settings).inputs)} are "
            f"written): {', '.join(report.skipped)}",
            markup=False,
            highlight=False,
        )
    if page is not None:
        _not_read_note(page)


# ---- policy --------------------------------------------------------------------------------

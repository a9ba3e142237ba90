"""The what-if report's forms: the documented JSON object, the Markdown page (report.md) and
the short text :func:`render_summary` that ``policy apply`` / ``scorecard apply`` can show
before asking for confirmation. Pure."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

from streams.core.whatif import OUTCOMES
from streams.core.whatif_report import WhatIfReport


def report_json(report: WhatIfReport) -> dict[str, Any]:
    """The documented JSON object (docs/what-if.md): amounts as decimal strings."""
    before, after = report.totals
    published = report.published
    return {
        "window": {
            "from": report.window.start.isoformat(),
            "to": report.window.end.isoformat(),
        },
        "live": report.live,
        "candidate": report.candidate,
        "counts": {
            "requests": report.requests,
            "users": report.users,
            "untrusted": report.untrusted,
            "flipped": report.flipped,
            "amount_changed": report.amount_changed,
            "unchanged": report.requests - report.flipped - report.amount_changed,
            "published": {
                "found": published.found,
                "matching": published.matching,
                "differing": published.differing,
                "environmental": published.environmental,
                "differing_ids": list(published.differing_ids),
            },
        },
        "matrix": {a.value: {b.value: report.matrix[a, b] for b in OUTCOMES} for a in OUTCOMES},
        "totals": {"before": before.as_json(), "after": after.as_json()},
        "by_segment": {
            name: {"before": b.as_json(), "after": a.as_json()}
            for name, (b, a) in report.by_segment.items()
        },
        "overrides": {"before": report.overrides[0], "after": report.overrides[1]},
        "status_changes": {
            "users": report.lines,
            "changed": report.lines_changed,
            "by_change": [
                {"from": a, "to": b, "users": n} for (a, b), n in report.status_changes.items()
            ],
        },
        "flipped": [
            {
                "request_id": f.request_id,
                "user_id": f.user_id,
                "from": f.before.value,
                "to": f.after.value,
                "approved_amount_before": str(f.amount_before),
                "approved_amount_after": str(f.amount_after),
                "evaluated_at": f.evaluated_at.isoformat() if f.evaluated_at else None,
            }
            for f in report.flips
        ],
        "flipped_limit": report.flipped_limit,
    }


def _money(value: Decimal | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _pd(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def _change(before: object, after: object) -> str:
    return f"{before} → {after}" if before != after else f"{before}"


def outcomes_markdown(report: WhatIfReport) -> str:
    """The outcome matrix (live → candidate) as a Markdown table."""
    lines = [
        "| live \\ candidate | " + " | ".join(o.value for o in OUTCOMES) + " |",
        "|---|" + "---|" * len(OUTCOMES),
    ]
    for a in OUTCOMES:
        row = " | ".join(str(report.matrix[a, b]) for b in OUTCOMES)
        lines.append(f"| {a.value} | {row} |")
    return "\n".join(lines) + "\n"


def segments_markdown(report: WhatIfReport) -> str:
    """Requests, approvals, approved amount, mean PD and expected loss by segment, before →
    after, with the totals as the last row, as a Markdown table."""
    lines = [
        "| segment | requests | approvals | approved amount | mean PD | expected loss | "
        "expected loss per approval |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, (b, c) in [*report.by_segment.items(), ("**all**", report.totals)]:
        lines.append(
            f"| {name} | {_change(b.requests, c.requests)} | "
            f"{_change(b.approvals, c.approvals)} | "
            f"{_change(_money(b.approved_amount), _money(c.approved_amount))} | "
            f"{_change(_pd(b.mean_pd), _pd(c.mean_pd))} | "
            f"{_change(_money(b.expected_loss), _money(c.expected_loss))} | "
            f"{_change(_money(b.mean_expected_loss), _money(c.mean_expected_loss))} |"
        )
    return "\n".join(lines) + "\n"


def report_markdown(report: WhatIfReport) -> str:
    """The report as a Markdown page (report.md)."""
    lines = [
        "# What-if report",
        "",
        f"Requests judged from {report.window.start.isoformat()} to "
        f"{report.window.end.isoformat()} (excluded), re-answered under the live configuration "
        f"({report.live}) and the candidate ({report.candidate}).",
        "",
        render_summary(report),
        "",
        "## Outcomes, live → candidate",
        "",
        outcomes_markdown(report),
        "## By segment, before → after",
        "",
        segments_markdown(report),
        f"Decisions overriding the displayed status: {report.overrides[0]} → "
        f"{report.overrides[1]}.",
        "",
        "## Line status at the end of the window",
        "",
        f"{report.lines_changed} of {report.lines} users' lines would have another status.",
        "",
    ]
    if report.status_changes:
        lines += ["| from | to | users |", "|---|---|---|"]
        lines += [f"| {a} | {b} | {n} |" for (a, b), n in report.status_changes.items()]
        lines.append("")
    if report.flips:
        lines += [
            f"## Flipped requests (first {len(report.flips)} of {report.flipped})",
            "",
            "| request | user | judged at | live | candidate |",
            "|---|---|---|---|---|",
        ]
        for f in report.flips:
            at = f.evaluated_at.isoformat() if f.evaluated_at else "-"
            lines.append(
                f"| {f.request_id} | {f.user_id} | {at} | {f.before.value} "
                f"{_money(f.amount_before)} | {f.after.value} {_money(f.amount_after)} |"
            )
        lines.append("")
    p = report.published
    lines.append(
        f"The live side equals {p.matching} of the {p.found} published decisions found"
        f"{f'; {p.differing} differ' if p.differing else ''}"
        f"{f'; {p.environmental} were environmental (not compared)' if p.environmental else ''}."
    )
    return "\n".join(lines) + "\n"


def _span(report: WhatIfReport) -> str:
    seconds = (report.window.end - report.window.start).total_seconds()
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = round(seconds / size, 1)
            return f"{count:g} {unit}" + ("" if count == 1 else "s")
    return f"{seconds:g} seconds"


def render_summary(report: WhatIfReport) -> str:
    """A short text for a person about to apply the candidate (a few lines)."""
    before, after = report.totals
    head = (
        f"What-if over the {_span(report)} to {report.window.end:%Y-%m-%d %H:%M} UTC: "
        f"{report.requests} requests of {report.users} users re-answered"
    )
    if not report.requests:
        return head + "; nothing to compare."
    moves = Counter(
        {(a.value, b.value): n for (a, b), n in report.matrix.items() if a is not b and n}
    )
    flipped = ", ".join(f"{a}→{b} {n}" for (a, b), n in moves.most_common())
    text = [
        f"{head}; {report.flipped} would change outcome" + (f" ({flipped})." if flipped else "."),
        f"Approvals {_change(before.approvals, after.approvals)}, approved "
        f"{_change(_money(before.approved_amount), _money(after.approved_amount))}, expected "
        f"loss {_change(_money(before.expected_loss), _money(after.expected_loss))}.",
    ]
    if report.status_changes:
        changes = ", ".join(f"{a}→{b} {n}" for (a, b), n in report.status_changes.items())
        text.append(
            f"{report.lines_changed} lines would end the window in another status ({changes})."
        )
    return "\n".join(text)

"""Documentation generated from the code, so the docs cannot drift from what runs.

Whole pages (:data:`GENERATED_PAGES`) and sections between ``<!-- name:start -->`` and
``<!-- name:end -->`` markers (:data:`DOC_SECTIONS`); ``python -m streams.devtools.docs``
writes them, and unit tests fail when a committed one differs.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from schemas.models import AssetEvent, AssetType, InputEvent, RepaymentEvent, SpendingEvent
from streams.core.features import SCORE_MAX, SCORE_MIN
from streams.core.policy import load_default_policy
from streams.core.scorecard import Characteristic, ScorecardDocument, load_default_scorecard
from streams.core.scoring import assess
from streams.core.state import fold_events
from streams.devtools.config_docs import configuration_markdown
from streams.devtools.strategy_docs import STRATEGY_SECTIONS
from streams.devtools.wire_docs import wire_contract_markdown


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:g}"


def _bins(c: Characteristic) -> str:
    parts = []
    lower: float | None = None
    for b in c.bins:
        if b.values is not None:
            span = "/".join(_number(v) for v in b.values)
        elif b.below is None:
            span = f"≥ {_number(lower)}" if lower is not None else "any"
        elif lower is None:
            span = f"< {_number(b.below)}"
        else:
            span = f"{_number(lower)}–<{_number(b.below)}"
        parts.append(f"{span}: {b.points:+d}")
        lower = b.below
    parts.append(f"unknown: {c.missing.points:+d}")
    return " · ".join(parts)


def scorecard_markdown(card: ScorecardDocument | None = None) -> str:
    """The shipped scorecard as a Markdown table (kept in sync by a test)."""
    card = card or load_default_scorecard()
    lines = [
        f"Scorecard `{card.version}` ({card.kind}): score = clamp({card.base_points} + Σ "
        f"points, {SCORE_MIN}, {SCORE_MAX}); {card.scaling.pdo:g} points double the odds, "
        f"{card.scaling.score} ↔ PD {card.pd_of(card.scaling.score):.1%} over "
        f"{card.scaling.horizon_months} months.",
        "",
        "| characteristic | measures | bins → points | reason text |",
        "|---|---|---|---|",
    ]
    for name, c in card.characteristics.items():
        lines.append(f"| `{name}` | {c.measure} | {_bins(c)} | {c.reason.en} / {c.reason.zh} |")
    return "\n".join(lines) + "\n"


def worked_example_events() -> tuple[datetime, list[InputEvent], list[InputEvent]]:
    """The worked example of docs/policy.md: a user who missed payments a year ago and repaid
    on time since (``before``), then filed verified income and deposit proofs (``proofs``)."""
    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

    def ago(days: int) -> datetime:
        return now - timedelta(days=days)

    def repay(eid: str, days: int, paid: int, dpd: int, balance: int) -> RepaymentEvent:
        return RepaymentEvent(
            event_id=eid,
            user_id="u-42",
            occurred_at=ago(days),
            loan_id="loan-7",
            amount_due=Decimal(1000),
            amount_paid=Decimal(paid),
            days_past_due=dpd,
            outstanding_balance=Decimal(balance),
        )

    before: list[InputEvent] = [
        repay("r-miss-0", 395, 0, 20, 12000),
        repay("r-miss-1", 365, 0, 20, 12000),
        repay("r-miss-2", 335, 0, 45, 12000),
        *(repay(f"r-ok-{k}", 30 * k, 1000, 0, 12000 - 1000 * (10 - k)) for k in range(9, 0, -1)),
        *(
            SpendingEvent(
                event_id=f"s-{m}",
                user_id="u-42",
                occurred_at=ago(30 * m + 5),
                amount=Decimal("420.50"),
                category="groceries",
            )
            for m in range(6)
        ),
    ]
    proofs: list[InputEvent] = [
        AssetEvent(
            event_id="a-inc",
            user_id="u-42",
            occurred_at=ago(3),
            asset_type=AssetType.INCOME,
            value=Decimal(9000),
            verified=True,
        ),
        AssetEvent(
            event_id="a-dep",
            user_id="u-42",
            occurred_at=ago(1),
            asset_type=AssetType.DEPOSIT,
            value=Decimal(50000),
            verified=True,
        ),
    ]
    return now, before, proofs


def worked_example_markdown() -> str:
    """Points per attribute before and after the proofs, and the resulting line."""
    policy, card = load_default_policy(), load_default_scorecard()
    now, before, proofs = worked_example_events()
    a = assess(fold_events(None, before), now, policy, card=card)  # type: ignore[arg-type]
    b = assess(fold_events(None, before + proofs), now, policy, card=card)  # type: ignore[arg-type]
    lines = [
        "| characteristic | feature value before → after | points before | points after |",
        "|---|---|---|---|",
    ]
    values_a, values_b = a.features.values(), b.features.values()
    for name, c in card.characteristics.items():
        va, vb = values_a[c.feature], values_b[c.feature]
        shown = " → ".join("unknown" if v is None else f"{v:,.2f}" for v in (va, vb))
        lines.append(f"| `{name}` | {shown} | {a.points[name]:+d} | {b.points[name]:+d} |")
    lines += [
        f"| **score** (base {card.base_points}) | | **{a.score}** | **{b.score}** |",
        f"| probability of default (12 months) | | {a.pd:.1%} | {b.pd:.1%} |",
        f"| segment | | {a.segment} | {b.segment} |",
        f"| thresholds (close below / reopen at) | | {a.thresholds.close_below} / "
        f"{a.thresholds.reopen_at} | {b.thresholds.close_below} / {b.thresholds.reopen_at} |",
        f"| status | | {a.status.value} | {b.status.value} |",
        f"| credit limit / available | | {a.credit_limit} / {a.available_limit} | "
        f"{b.credit_limit} / {b.available_limit} |",
    ]
    return "\n".join(lines) + "\n"


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def status_example_events() -> tuple[list[tuple[InputEvent, str]], datetime]:
    """The status worked example's events (with a description each) and its end instant."""
    user = "u-7"

    def repayment(when: str, paid: int, dpd: int, balance: int) -> RepaymentEvent:
        return RepaymentEvent(
            event_id=f"r-{when}",
            user_id=user,
            occurred_at=_at(when),
            loan_id="loan-1",
            amount_due=Decimal(1000),
            amount_paid=Decimal(paid),
            days_past_due=dpd,
            outstanding_balance=Decimal(balance),
        )

    def proof(when: str, kind: AssetType, value: int) -> AssetEvent:
        return AssetEvent(
            event_id=f"a-{when}",
            user_id=user,
            occurred_at=_at(when),
            asset_type=kind,
            value=Decimal(value),
            verified=True,
        )

    events: list[tuple[InputEvent, str]] = [
        (proof("2026-03-01T10:00", AssetType.INCOME, 12000), "verified income 12,000"),
        (repayment("2026-04-01T09:00", 1000, 0, 9000), "repayment on time"),
        (repayment("2026-05-03T12:00", 1000, 5, 8000), "repayment 5 days late"),
        (repayment("2026-05-05T08:00", 0, 12, 8000), "repayment missed"),
        (proof("2026-05-06T10:00", AssetType.DEPOSIT, 150000), "verified deposit 150,000"),
        (repayment("2026-06-02T09:00", 1000, 0, 7000), "repayment on time"),
        (repayment("2026-07-20T15:00", 0, 35, 7000), "repayment 35 days past due"),
    ]
    return events, _at("2026-11-15T00:00")


def status_example_markdown() -> str:
    """The status machine over the example's events: every review instant, what caused it,
    the score and the status after it (computed by ``streams.core.timeline``)."""
    from streams.core.timeline import Review, advance, canonical, constant

    policy = load_default_policy()
    described, end = status_example_events()
    what = {event.occurred_at: text for event, text in described}
    trace: list[Review] = []
    advance(
        canonical([e for e, _ in described]),
        constant(policy),
        end,
        timedelta(days=1826),
        trace=trace,
    )
    lines = [
        "| review instant (UTC) | why | score | segment | status after (since) |",
        "|---|---|---|---|---|",
    ]
    previous = None
    for step in trace:
        if step.at in what:
            why = what[step.at]
        elif step.at.day == 1 and step.at.hour == 0:
            why = "month start"
        elif step.status.status.value != "frozen" and previous == "frozen":
            why = "freeze runs out"
        else:
            why = "daily review (time alone changed an input)"
        changed = previous != step.status.status.value
        status = f"`{step.status.status.value}` (since {step.status.since:%b %d %H:%M})"
        lines.append(
            f"| {step.at:%Y-%m-%d %H:%M:%S} | {why} | {step.score} | {step.segment} | "
            + (f"**{status}**" if changed else status)
            + " |"
        )
        previous = step.status.status.value
    # The same history with the missed repayment arriving late (after a review on May 20).
    late, _ = described[3]
    others = canonical([e for e, _ in described if e is not late])
    arrived = _at("2026-05-20T12:00")
    before = advance(
        [e for e in others if e.occurred_at <= arrived],
        constant(policy),
        arrived,
        timedelta(days=1826),
    )
    after = advance(
        canonical([e for e, _ in described if e.occurred_at <= arrived]),
        constant(policy),
        arrived,
        timedelta(days=1826),
    )
    old, new = before.trajectory.line, after.trajectory.line
    assert old is not None and new is not None
    lines += [
        "",
        f"If the missed repayment of {late.occurred_at:%b %d} reaches Kafka only on "
        f"{arrived:%b %d %H:%M}, the status announced until then is `{old.status.value}` "
        f"(since {old.since:%b %d %H:%M}); the late event restates it as "
        f"`{new.status.value}` (since {new.since:%b %d %H:%M}), announced with "
        "`LATE_EVENT_RESTATED` — the same as if it had arrived on time.",
    ]
    return "\n".join(lines) + "\n"


def redis_layout_markdown() -> str:
    """Every Redis key, hash field and script, from the code that uses them."""
    import inspect

    from streams.adapters.redis import layout
    from streams.adapters.redis.keys import KeyLayout

    keys = KeyLayout("cl")
    samples = {
        "state": keys.state("<user>"),
        "decision": keys.decision("<user>", "<request_id>"),
        "reviews": keys.reviews(0).replace("-0", "-<partition>"),
        "reviews_policy_mark": keys.reviews_policy_mark(0).replace("-0", "-<partition>"),
        "layout": keys.layout(),
    }
    lines = [
        f"Key layout version **{layout.LAYOUT_VERSION}** (a worker refuses another: "
        "`creditline replay --rebuild`). Prefix `cl` (`CREDITLINE_REDIS_KEY_PREFIX`). Every "
        "key of one user carries the hash tag `{<user>}`: one Redis Cluster slot, so one "
        "Lua script may touch them together.",
        "",
        "| key | type and content |",
        "|---|---|",
    ]
    for name, key in samples.items():
        doc = " ".join((inspect.getdoc(getattr(KeyLayout, name)) or "").split())
        lines.append(f"| `{key}` | {doc} |")
    lines += [
        "",
        "Fields of `cl:{<user>}:state` (*internal*: the worker's; the rest is the readable "
        "summary):",
        "",
        "| field | holds |",
        "|---|---|",
    ]
    for name, text in layout.STATE_FIELDS.items():
        kind = " *(internal)*" if name in layout._INTERNAL_FIELDS else ""
        lines.append(f"| `{name}`{kind} | {text} |")
    lines += [
        "",
        "Readable fields not stored (each is in `trajectory` or `state` already), derived "
        "when read (`RedisStore.read_summary`):",
        "",
        "| field | holds |",
        "|---|---|",
    ]
    for name, text in layout.DERIVED_FIELDS.items():
        lines.append(f"| `{name}` | {text} |")
    lines += ["", "Lua scripts (run by their SHA1, loaded again when a server lacks them):", ""]
    for name, text in layout.SCRIPTS.items():
        lines.append(f"* `{name}`: {text}.")
    invariants = (inspect.getdoc(layout) or "").split("Invariants the scripts keep", 1)[1]
    lines += ["", "Invariants the scripts keep" + invariants.rstrip()]
    return "\n".join(lines) + "\n"


def kafka_acls_markdown() -> str:
    """The Kafka ACL table and commands (``streams.devtools.kafka_acls``)."""
    from streams.devtools.kafka_acls import acl_markdown

    return acl_markdown()


REDIS_LAYOUT_SECTIONS = {"layout": redis_layout_markdown}
POLICY_DOC_SECTIONS = {
    "example": worked_example_markdown,
    "status-example": status_example_markdown,
    **STRATEGY_SECTIONS,
}
#: Documents (paths from the repository root) -> their generated sections.
DOC_SECTIONS: dict[str, dict[str, Callable[[], str]]] = {
    "docs/concepts.md": {"scorecard": scorecard_markdown},
    "docs/operations.md": {"kafka-acls": kafka_acls_markdown},
    "docs/policy.md": POLICY_DOC_SECTIONS,
    "docs/redis-layout.md": REDIS_LAYOUT_SECTIONS,
}


#: Pages written whole by a function (paths from the repository root).
GENERATED_PAGES: dict[str, Callable[[], str]] = {
    "docs/configuration.md": configuration_markdown,
    "docs/wire-contract.md": wire_contract_markdown,
}


def render_sections(text: str, sections: dict[str, Callable[[], str]]) -> str:
    """``text`` with every generated section replaced by its current rendering."""
    for name, render in sections.items():
        start, end = f"<!-- {name}:start -->\n", f"<!-- {name}:end -->"
        head, found, rest = text.partition(start)
        if not found:
            raise ValueError(f"document has no {start.strip()} marker")
        _, found, tail = rest.partition(end)
        if not found:
            raise ValueError(f"document has no {end} marker")
        text = head + start + render() + end + tail
    return text


def current_documents(root: Path) -> dict[str, str]:
    """Every generated document as it should be: path from ``root`` -> text."""
    documents = {path: render() for path, render in GENERATED_PAGES.items()}
    for path, sections in DOC_SECTIONS.items():
        documents[path] = render_sections((root / path).read_text(), sections)
    return documents


if __name__ == "__main__":
    here = Path.cwd()
    for name, text in current_documents(here).items():
        path = here / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {name}")

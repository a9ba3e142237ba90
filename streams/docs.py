"""Documentation generated from the code, so the README cannot drift from what runs."""

from __future__ import annotations

from streams.core.policy import Attribute, Policy, load_default_policy
from streams.core.scoring import SCORE_MAX, SCORE_MIN


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:g}"


def _bins(attribute: Attribute) -> str:
    parts = []
    lower: float | None = None
    for b in attribute.bins:
        if b.below is None:
            span = f"≥ {_number(lower)}" if lower is not None else "any"
        elif lower is None:
            span = f"< {_number(b.below)}"
        else:
            span = f"{_number(lower)}–<{_number(b.below)}"
        parts.append(f"{span}: {b.points:+d}")
        lower = b.below
    if attribute.missing_points:
        parts.append(f"unknown: {attribute.missing_points:+d}")
    return " · ".join(parts)


def scorecard_markdown(policy: Policy | None = None) -> str:
    """The default policy's scorecard as a Markdown table (kept in sync by a test)."""
    policy = policy or load_default_policy()
    card = policy.scorecard
    lines = [
        f"Policy `{policy.version}`: score = clamp({card.base_points} + Σ points, "
        f"{SCORE_MIN}, {SCORE_MAX}).",
        "",
        "| attribute | measures | bins → points | adverse-factor text |",
        "|---|---|---|---|",
    ]
    for name, a in card.attributes.items():
        lines.append(f"| `{name}` | {a.measure} | {_bins(a)} | {a.adverse.en} / {a.adverse.zh} |")
    return "\n".join(lines) + "\n"


def settings_markdown() -> str:
    """Every setting with its environment variable, default and description."""
    from streams.settings import ENV_PREFIX, Settings

    lines = ["| environment variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        if name == "cache_dir":
            default = "`$XDG_CACHE_HOME/creditline` (`~/.cache/creditline`)"
        else:
            value = field.default
            if hasattr(value, "get_secret_value"):
                value = value.get_secret_value()
            default = f"`{value}`"
        lines.append(f"| `{ENV_PREFIX}{name.upper()}` | {default} | {field.description or ''} |")
    return "\n".join(lines) + "\n"


SECTIONS = {"scorecard": scorecard_markdown, "settings": settings_markdown}


def render_readme(text: str) -> str:
    """The README with every generated section replaced by its current rendering."""
    for name, render in SECTIONS.items():
        start, end = f"<!-- {name}:start -->\n", f"<!-- {name}:end -->"
        head, found, rest = text.partition(start)
        if not found:
            raise ValueError(f"README has no {start.strip()} marker")
        _, found, tail = rest.partition(end)
        if not found:
            raise ValueError(f"README has no {end} marker")
        text = head + start + render() + end + tail
    return text


if __name__ == "__main__":
    from pathlib import Path

    readme = Path("README.md")
    readme.write_text(render_readme(readme.read_text()))

"""Documentation generated from the code, so the README cannot drift from what runs."""

from __future__ import annotations

from streams.core.scoring import DEFAULT_SCORECARD, SCORE_MAX, SCORE_MIN, Attribute, Scorecard


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:g}"


def _bins(card_attr: Attribute) -> str:
    parts = []
    lower: float | None = None
    for b in card_attr.bins:
        if b.upper is None:
            span = f"≥ {_number(lower)}" if lower is not None else "any"
        elif lower is None:
            span = f"< {_number(b.upper)}"
        else:
            span = f"{_number(lower)}–<{_number(b.upper)}"
        parts.append(f"{span}: {b.points:+d}")
        lower = b.upper
    if card_attr.missing_points:
        parts.append(f"unknown: {card_attr.missing_points:+d}")
    return " · ".join(parts)


def scorecard_markdown(card: Scorecard = DEFAULT_SCORECARD) -> str:
    """The scorecard as a Markdown table (embedded in the README; a test keeps it in sync)."""
    lines = [
        f"Scorecard `{card.version}`: score = clamp({card.base_points} + Σ points, "
        f"{SCORE_MIN}, {SCORE_MAX}).",
        "",
        "| attribute | measures | bins → points | adverse-factor text |",
        "|---|---|---|---|",
    ]
    for a in card.attributes:
        lines.append(f"| `{a.name}` | {a.measure} | {_bins(a)} | {a.adverse_text} |")
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

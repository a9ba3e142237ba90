"""The generated sections of docs/scorecard.md, from the shipped cards and their report.

``python -m streams.modeling docs`` refreshes them from the committed files (fast);
``python -m streams.modeling ship`` refits everything first. ``tests/unit/test_scorecard_docs.py``
fails when the document drifts from the files.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streams.core.path_back import path_back, time_alone
from streams.core.scorecard import ScorecardDocument, parse_scorecard
from streams.core.state import fold_events
from streams.devtools.docs import render_sections, worked_example_events

ROOT = Path(__file__).resolve().parents[2]
PD_SCORES = (350, 450, 500, 540, 580, 600, 620, 660, 700, 750, 800, 950)


def _load(
    root: Path,
) -> tuple[ScorecardDocument, ScorecardDocument, dict[str, Any], dict[str, Any]]:
    policies = root / "streams" / "policies"
    fitted = parse_scorecard((policies / "scorecard-default.yaml").read_text(encoding="utf-8"))
    expert = parse_scorecard((policies / "scorecard-expert.yaml").read_text(encoding="utf-8"))
    report = json.loads((root / "docs" / "scorecard" / "report.json").read_text(encoding="utf-8"))
    stability = json.loads(
        (root / "docs" / "scorecard" / "stability.json").read_text(encoding="utf-8")
    )
    return fitted, expert, report, stability


def _pct(value: float) -> str:
    return f"{100 * value:.1f} %"


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:g}"


def card_table(card: ScorecardDocument) -> str:
    """Every characteristic: feature, direction, bins → points, missing, reason texts."""
    lines = [
        f"`{card.version}`: score = clamp({card.base_points} + Σ points, 350, 950); "
        f"{card.scaling.pdo:g} points double the odds, {card.scaling.score:g} points at "
        f"{card.scaling.odds:g}:1 good:bad (PD {_pct(card.pd_of(card.scaling.score))}); bad = "
        f"{card.scaling.bad_definition}.",
        "",
        "| characteristic | feature | direction | bins → points (training share) | missing | "
        "reason (en / zh) |",
        "|---|---|---|---|---|---|",
    ]
    for name, c in card.characteristics.items():
        parts = []
        lower: float | None = None
        for b in c.bins:
            if b.values is not None:
                span = "{" + ", ".join(_number(v) for v in b.values) + "}"
            elif b.below is None:
                span = f"≥ {_number(lower)}" if lower is not None else "any"
            elif lower is None:
                span = f"< {_number(b.below)}"
            else:
                span = f"{_number(lower)}–<{_number(b.below)}"
            share = "" if b.share is None else f" ({_pct(b.share)})"
            parts.append(f"{span}: {b.points}{share}")
            lower = b.below
        missing = f"{c.missing.points}"
        if c.missing.share:
            missing += f" ({_pct(c.missing.share)})"
        if c.missing.override:
            missing += " **override**"
        lines.append(
            f"| `{name}` | `{c.feature}` | {c.direction} | {' · '.join(parts)} | {missing} | "
            f"{c.reason.en} / {c.reason.zh} |"
        )
    return "\n".join(lines) + "\n"


def pd_table(root: Path = ROOT) -> str:
    """Score → 12-month PD under the fitted and the (calibrated) expert card."""
    fitted, expert, _, _ = _load(root)
    lines = [
        "| score | " + " | ".join(str(s) for s in PD_SCORES) + " |",
        "|---|" + "---|" * len(PD_SCORES),
    ]
    for card in (fitted, expert):
        cells = " | ".join(_pct(card.pd_of(s)) for s in PD_SCORES)
        lines.append(f"| PD `{card.version}` | {cells} |")
    return "\n".join(lines) + "\n"


def summary_section(root: Path = ROOT) -> str:
    """Headline figures of the shipped report."""
    from streams.modeling.report import _pct as pct

    _, _, report, stability = _load(root)
    lines = [
        "| data | card | rows | bad rate | AUC | Gini | KS | Brier | rank ordering | score PSI |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, e in report["evaluations"].items():
        psi = "–" if e["score_psi"] is None else f"{e['score_psi']:.3f}"
        lines.append(
            f"| {name} | `{e['scorecard_version']}` | {e['n']:,} | {pct(e['bad_rate'])} | "
            f"{e['auc']:.3f} | {e['gini']:.3f} | {e['ks']:.3f} | {e['brier']:.4f} | "
            f"{'holds' if e['rank_ordering'] else 'broken'} | {psi} |"
        )
    shifted = stability["shifted"]
    for name, auc in report["baseline_auc"].items():
        lines += [
            "",
            f"Yardstick: a plain scikit-learn logistic regression on the same point-in-time "
            f"features (standardised, unknown as 0 plus an indicator) reaches AUC {auc:.3f} on "
            f"{name}; the fitted card "
            f"{report['evaluations'][name]['auc'] - auc:+.3f} from it.",
        ]
    lines += [
        "",
        f"Stability: on a population whose latent risk is shifted by one standard deviation "
        f"(bad rate {pct(shifted['bad_rate'])}), the score PSI is {shifted['score_psi']:.3f}; "
        "on the validation population it is "
        f"{report['evaluations']['validation (seed 2)']['score_psi']:.3f}.",
    ]
    return "\n".join(lines) + "\n"


def fitted_card_section(root: Path = ROOT) -> str:
    """The fitted card as a table."""
    return card_table(_load(root)[0])


def expert_card_section(root: Path = ROOT) -> str:
    """The expert card as a table."""
    return card_table(_load(root)[1])


def validation_section(root: Path = ROOT) -> str:
    """Deciles and calibration of the fitted card on the validation population."""
    _, _, report, _ = _load(root)
    e = report["evaluations"]["validation (seed 2)"]
    lines = [
        "| score decile | scores | rows | bad rate | mean PD |",
        "|---|---|---|---|---|",
    ]
    for b in e["deciles"]:
        lines.append(
            f"| {b['index']} | {b['min_score']:g}–{b['max_score']:g} | {b['rows']:,} | "
            f"{_pct(b['bad_rate'])} | {_pct(b['mean_pd'])} |"
        )
    lines += ["", "| PD band | rows | predicted PD | observed bad rate |", "|---|---|---|---|"]
    for row in e["calibration"]:
        lines.append(
            f"| {_pct(row['min_pd'])}–{_pct(row['max_pd'])} | {row['rows']:,} | "
            f"{_pct(row['predicted'])} | {_pct(row['observed'])} |"
        )
    return "\n".join(lines) + "\n"


def characteristics_section(root: Path = ROOT) -> str:
    """IV of every candidate, what was left out and why, PSI per characteristic."""
    fitted, _, report, stability = _load(root)
    validation = {
        c["name"]: c for c in report["evaluations"]["validation (seed 2)"]["characteristics"]
    }
    shifted = stability["shifted"]["characteristic_psi"]
    lines = [
        "| candidate | IV (development) | in the card | coefficient | bad rate follows "
        "direction (validation) | PSI validation | PSI shifted |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, iv in report["iv"].items():
        used = name in fitted.characteristics
        v = validation.get(name)
        follows = (
            "–" if v is None else {None: "–", True: "yes", False: "no"}[v["observed_monotonic"]]
        )
        coefficient = report["coefficients"].get(name)
        cells = [
            f"`{name}`",
            f"{iv:.3f}",
            "yes" if used else "no",
            "–" if coefficient is None else f"{coefficient:+.3f}",
            follows,
            "–" if v is None else f"{v['psi']:.3f}",
            "–" if name not in shifted else f"{shifted[name]:.3f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if report["dropped"]:
        lines.append("")
        lines += [f"* `{name}` left out: {why}." for name, why in report["dropped"].items()]
    return "\n".join(lines) + "\n"


def path_back_section(root: Path = ROOT) -> str:
    """Reasons and the path back of the policy docs' worked-example user (before proofs)."""
    fitted, _, _, _ = _load(root)
    now, before, _ = worked_example_events()
    state = fold_events(None, before)
    assert state is not None
    from streams.core.features import derive_features

    scored = fitted.evaluate(derive_features(state, now))
    result = path_back(fitted, state, now, 620)
    lines = [
        f"Score {scored.score} (PD {_pct(scored.pd)}); target 620 (the default policy's "
        "`reopen_at`). Principal reasons:",
        "",
    ]
    lines += [
        f"{i}. `{r.code}` (−{r.shortfall} points): {r.text.en} / {r.text.zh}"
        for i, r in enumerate(fitted.reasons(scored.points), 1)
    ]
    lines += ["", "Paths back:", ""]
    for path in result.paths:
        gains = ", ".join(f"`{m.characteristic}` +{m.points}" for m in path.moves)
        lines.append(f"* **{path.score}**: {path.text.en} / {path.text.zh} ({gains})")
    alone = ", ".join(f"{k} months: {score}" for k, score in time_alone(fitted, state, now))
    lines += ["", f"Time alone, with no event at all: {alone}."]
    return "\n".join(lines) + "\n"


SECTIONS: dict[str, Callable[[Path], str]] = {
    "scorecard-summary": summary_section,
    "scorecard-fitted": fitted_card_section,
    "scorecard-pd": pd_table,
    "scorecard-validation": validation_section,
    "scorecard-characteristics": characteristics_section,
    "scorecard-expert": expert_card_section,
    "scorecard-path-back": path_back_section,
}


def render_scorecard_doc(text: str, root: Path = ROOT) -> str:
    """docs/scorecard.md with every generated section current (from the files under
    ``root``)."""
    sections: dict[str, Callable[[], str]] = {
        name: functools.partial(render, root) for name, render in SECTIONS.items()
    }
    return render_sections(text, sections)

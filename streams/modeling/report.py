"""Fit and validation reports: Markdown, JSON and PNG plots (ROC, KS, calibration).

Needs matplotlib (the ``model`` extra) for the plots only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.core.model_metrics import psi_verdict
from streams.core.scorecard import ScorecardDocument
from streams.modeling.evaluate import Evaluation


@dataclass(frozen=True, slots=True)
class Report:
    """What a fit (or an evaluation) produced, ready to be written."""

    title: str
    card: ScorecardDocument
    #: Evaluations by name ("training", "validation", "expert on validation", …); the first
    #: is the card's main one.
    evaluations: Mapping[str, Evaluation]
    iv: Mapping[str, float] = field(default_factory=dict)
    dropped: Mapping[str, str] = field(default_factory=dict)
    coefficients: Mapping[str, float] = field(default_factory=dict)
    #: The yardstick: AUC of a plain logistic regression on the same features, by data name.
    baseline_auc: Mapping[str, float] = field(default_factory=dict)
    notes: Sequence[str] = ()

    def to_json(self) -> dict[str, Any]:
        """Everything (JSON-ready)."""
        return {
            "title": self.title,
            "scorecard_version": self.card.version,
            "evaluations": {name: e.to_json() for name, e in self.evaluations.items()},
            "iv": {name: round(value, 6) for name, value in self.iv.items()},
            "dropped": dict(self.dropped),
            "coefficients": {name: round(value, 6) for name, value in self.coefficients.items()},
            "baseline_auc": {name: round(value, 6) for name, value in self.baseline_auc.items()},
            "notes": list(self.notes),
        }


def roc_points(scores: Sequence[float], bad: Sequence[int]) -> list[tuple[float, float]]:
    """(false positive rate, true positive rate) of declining everything below each
    threshold, from the lowest score up (a bad is a positive)."""
    pairs = sorted(zip(scores, bad, strict=True))
    n_bad = sum(bad) or 1
    n_good = (len(bad) - sum(bad)) or 1
    points = [(0.0, 0.0)]
    cum_bad = cum_good = 0
    for i, (score, outcome) in enumerate(pairs):
        cum_bad += outcome
        cum_good += 1 - outcome
        if i + 1 < len(pairs) and pairs[i + 1][0] == score:
            continue
        points.append((cum_good / n_good, cum_bad / n_bad))
    return points


def _pct(value: float) -> str:
    return f"{100 * value:.1f} %"


def summary_table(evaluations: Mapping[str, Evaluation]) -> str:
    """Headline figures, one row per evaluation."""
    lines = [
        "| data | card | rows | bad rate | AUC | Gini | KS | Brier | mean PD | rank ordering | "
        "score PSI |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, e in evaluations.items():
        psi = "–" if e.score_psi is None else f"{e.score_psi:.3f}"
        lines.append(
            f"| {name} | `{e.scorecard_version}` | {e.n:,} | {_pct(e.bad_rate)} | {e.auc:.3f} | "
            f"{e.gini:.3f} | {e.ks:.3f} | {e.brier:.4f} | {_pct(e.mean_pd)} | "
            f"{'holds' if e.rank_ordering else '**broken**'} | {psi} |"
        )
    return "\n".join(lines) + "\n"


def decile_table(e: Evaluation) -> str:
    """Bad rate by score decile (lowest scores first)."""
    lines = [
        "| decile | scores | rows | bads | bad rate | mean PD |",
        "|---|---|---|---|---|---|",
    ]
    for b in e.deciles:
        pd = "–" if b.mean_pd is None else _pct(b.mean_pd)
        lines.append(
            f"| {b.index} | {b.min_score:g}–{b.max_score:g} | {b.rows:,} | {b.bads:,} | "
            f"{_pct(b.bad_rate)} | {pd} |"
        )
    return "\n".join(lines) + "\n"


def calibration_table(e: Evaluation) -> str:
    """Predicted against observed PD by band of predicted PD."""
    lines = ["| band | PD range | rows | predicted | observed |", "|---|---|---|---|---|"]
    for row in e.calibration:
        lines.append(
            f"| {row.index} | {_pct(row.min_pd)}–{_pct(row.max_pd)} | {row.rows:,} | "
            f"{_pct(row.predicted)} | {_pct(row.observed)} |"
        )
    return "\n".join(lines) + "\n"


def characteristic_table(e: Evaluation, iv: Mapping[str, float] | None = None) -> str:
    """IV, declared direction, whether observed bad rates follow it, and PSI."""
    lines = [
        "| characteristic | feature | direction | IV (training) | IV (this data) | "
        "bad rate follows direction | PSI |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in e.characteristics:
        follows = {None: "–", True: "yes", False: "**no**"}[c.observed_monotonic]
        trained = "–" if not iv or c.name not in iv else f"{iv[c.name]:.3f}"
        psi = "–" if c.psi is None else f"{c.psi:.3f}"
        lines.append(
            f"| `{c.name}` | `{c.feature}` | {c.direction} | {trained} | {c.iv:.3f} | "
            f"{follows} | {psi} |"
        )
    return "\n".join(lines) + "\n"


def bins_table(e: Evaluation) -> str:
    """Points and observed bad rate of every bin."""
    lines = ["| characteristic | bin | points | rows | bad rate |", "|---|---|---|---|---|"]
    for c in e.characteristics:
        for b in c.bins:
            if b.rows or b.bin != "missing":
                lines.append(
                    f"| `{c.name}` | {b.bin} | {b.points} | {b.rows:,} | {_pct(b.bad_rate)} |"
                )
    return "\n".join(lines) + "\n"


def report_markdown(report: Report, plots: Sequence[str] = ()) -> str:
    """The report as Markdown."""
    main_name, main = next(iter(report.evaluations.items()))
    parts = [
        f"# {report.title}",
        "",
        f"Scorecard `{report.card.version}` ({report.card.kind}); bad = "
        f"{report.card.scaling.bad_definition}, horizon {report.card.scaling.horizon_months} "
        "months.",
        "",
        "## Discrimination and calibration",
        "",
        summary_table(report.evaluations),
    ]
    if report.baseline_auc:
        parts += [
            "Yardstick — a plain logistic regression on the same point-in-time features: "
            + ", ".join(f"AUC {v:.3f} on {k}" for k, v in report.baseline_auc.items())
            + ".",
            "",
        ]
    parts += [
        f"## Rank ordering ({main_name})",
        "",
        decile_table(main),
        f"## Calibration ({main_name})",
        "",
        calibration_table(main),
        f"## Characteristics ({main_name})",
        "",
        characteristic_table(main, report.iv),
        bins_table(main),
    ]
    if report.dropped:
        parts += ["## Candidates left out", ""]
        parts += [f"* `{name}`: {why}" for name, why in report.dropped.items()]
        parts.append("")
    if report.coefficients:
        parts += ["## Logistic regression on WoE", ""]
        parts += [f"* `{name}`: {value:+.4f}" for name, value in report.coefficients.items()]
        parts.append("")
    stability = [
        f"* {name}: score PSI {e.score_psi:.3f} ({psi_verdict(e.score_psi)})"
        for name, e in report.evaluations.items()
        if e.score_psi is not None
    ]
    if stability:
        parts += ["## Stability against the training distribution", "", *stability, ""]
    if report.notes:
        parts += ["## Notes", "", *[f"* {note}" for note in report.notes], ""]
    if plots:
        parts += ["## Plots", "", *[f"![{p}]({p})" for p in plots], ""]
    return "\n".join(parts)


def write_plots(directory: Path, evaluations: Mapping[str, Evaluation]) -> list[str]:
    """ROC, KS and calibration plots as PNG files in ``directory``; returns their names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    main_name, main = next(iter(evaluations.items()))
    figure, axes = plt.subplots(figsize=(5, 5))
    for name, e in evaluations.items():
        xs, ys = zip(*roc_points(e.scores, e.outcomes), strict=True)
        axes.plot(xs, ys, label=f"{name}: AUC {e.auc:.3f}")
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey")
    axes.set(xlabel="goods declined (FPR)", ylabel="bads declined (TPR)", title="ROC")
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(directory / "roc.png", dpi=100, metadata={"Software": None})
    plt.close(figure)
    names.append("roc.png")

    figure, axes = plt.subplots(figsize=(6, 4))
    pairs = sorted(zip(main.scores, main.outcomes, strict=True))
    n_bad = sum(main.outcomes) or 1
    n_good = (len(pairs) - sum(main.outcomes)) or 1
    xs_list, bads, goods = [], [], []
    cum_bad = cum_good = 0
    for score, outcome in pairs:
        cum_bad += outcome
        cum_good += 1 - outcome
        xs_list.append(score)
        bads.append(cum_bad / n_bad)
        goods.append(cum_good / n_good)
    axes.plot(xs_list, bads, label="bads")
    axes.plot(xs_list, goods, label="goods")
    axes.set(
        xlabel="score",
        ylabel="cumulative share",
        title=f"KS {main.ks:.3f} ({main_name})",
    )
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(directory / "ks.png", dpi=100, metadata={"Software": None})
    plt.close(figure)
    names.append("ks.png")

    figure, axes = plt.subplots(figsize=(5, 5))
    top = 0.0
    for name, e in evaluations.items():
        predicted = [row.predicted for row in e.calibration]
        observed = [row.observed for row in e.calibration]
        top = max(top, *predicted, *observed)
        axes.plot(predicted, observed, marker="o", label=f"{name}: Brier {e.brier:.4f}")
    axes.plot([0, top], [0, top], linestyle=":", color="grey")
    axes.set(xlabel="predicted PD", ylabel="observed bad rate", title="Calibration")
    axes.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    figure.savefig(directory / "calibration.png", dpi=100, metadata={"Software": None})
    plt.close(figure)
    names.append("calibration.png")
    return names


def stable_json(value: Any) -> Any:
    """``value`` with every float to 10 significant digits: the last bits of a float sum or
    ``exp`` differ between Python and library versions, and the committed report must be
    what any supported Python reproduces."""
    if isinstance(value, float):
        return float(f"{value:.10g}")
    if isinstance(value, dict):
        return {k: stable_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [stable_json(v) for v in value]
    return value


def write_report(directory: Path, report: Report, plots: bool = True) -> list[Path]:
    """Write ``report.md``, ``report.json`` and (with ``plots``) the PNG plots."""
    directory.mkdir(parents=True, exist_ok=True)
    names = write_plots(directory, report.evaluations) if plots else []
    (directory / "report.json").write_text(
        json.dumps(stable_json(report.to_json()), indent=2, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    (directory / "report.md").write_text(report_markdown(report, names), encoding="utf-8")
    return [directory / "report.md", directory / "report.json", *(directory / n for n in names)]

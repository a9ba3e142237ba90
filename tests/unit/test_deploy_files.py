"""Generated deployment files are current."""

from __future__ import annotations

from pathlib import Path

from streams.devtools.dashboards import DASHBOARD_PATH, PANELS, render

ROOT = Path(__file__).resolve().parents[2]


def test_grafana_dashboard_json_is_current() -> None:
    path = ROOT / DASHBOARD_PATH
    assert path.read_text() == render(), "run `python -m streams.devtools.dashboards`"


def test_dashboard_covers_what_operators_watch() -> None:
    titles = " ".join(title.lower() for title, *_ in PANELS)
    for topic in (
        "by topic",
        "dead letters",
        "by outcome",
        "displayed vs live",
        "latency",
        "event-time lag",
        "score distribution",
        "line-status",
        "consumer lag",
        "policy version",
        "scorecard in force",
        "scorecard stability",
        "approval rate by segment",
        "probability of default by segment",
        "shadow",
    ):
        assert topic in titles, topic

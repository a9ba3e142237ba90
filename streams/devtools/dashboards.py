"""The Grafana dashboard, as code: ``python -m streams.devtools.dashboards`` writes
``deploy/grafana/dashboards/creditline.json``.

Kept as code so every panel's PromQL sits in one readable list; a test checks the JSON is current
and a real Prometheus returns data for every expression.
"""

from __future__ import annotations

import json
from pathlib import Path

# (title, type, unit, [(legend, expr)])
PANELS: list[tuple[str, str, str, list[tuple[str, str]]]] = [
    (
        "Records consumed per second, by topic",
        "timeseries",
        "ops",
        [
            ("{{topic}}", "sum by (topic) (rate(creditline_records_consumed_total[1m]))"),
            (
                "{{topic}} read again (batch ended early)",
                "sum by (topic) (rate(creditline_records_requeued_total[1m]))",
            ),
        ],
    ),
    (
        "Dead letters per second, by reason",
        "timeseries",
        "ops",
        [("{{reason}}", "sum by (reason) (rate(creditline_records_dead_lettered_total[5m]))")],
    ),
    (
        "Decisions per second, by outcome",
        "timeseries",
        "ops",
        [("{{outcome}}", "sum by (outcome) (rate(creditline_decisions_total[5m]))")],
    ),
    (
        "Displayed vs live status (decisions per second)",
        "timeseries",
        "ops",
        [
            (
                "{{displayed}} → {{effective}}",
                "sum by (displayed, effective) (rate(creditline_decisions_by_status_total[5m]))",
            ),
            ("overrides", "sum(rate(creditline_decision_overrides_total[5m]))"),
        ],
    ),
    (
        "Decision latency",
        "timeseries",
        "s",
        [
            (
                "p50",
                "histogram_quantile(0.5, sum by (le) "
                "(rate(creditline_decision_latency_seconds_bucket[5m])))",
            ),
            (
                "p99",
                "histogram_quantile(0.99, sum by (le) "
                "(rate(creditline_decision_latency_seconds_bucket[5m])))",
            ),
        ],
    ),
    (
        "Event-time lag (applied − occurred_at)",
        "timeseries",
        "s",
        [
            (
                "p50",
                "histogram_quantile(0.5, sum by (le) "
                "(rate(creditline_event_time_lag_seconds_bucket[5m])))",
            ),
            (
                "p99",
                "histogram_quantile(0.99, sum by (le) "
                "(rate(creditline_event_time_lag_seconds_bucket[5m])))",
            ),
        ],
    ),
    (
        "Score distribution (updates per second)",
        "heatmap",
        "short",
        [("{{le}}", "sum by (le) (rate(creditline_score_bucket[5m]))")],
    ),
    (
        "Line-status changes per second",
        "timeseries",
        "ops",
        [("{{status}}", "sum by (status) (rate(creditline_line_status_changes_total[5m]))")],
    ),
    (
        "Consumer lag (records)",
        "timeseries",
        "short",
        [("{{topic}}", "max by (topic) (creditline_consumer_lag_records)")],
    ),
    (
        "Active policy version",
        "stat",
        "none",
        [("{{version}}", "max by (version) (creditline_policy_info) == 1")],
    ),
    (
        "Scorecard in force",
        "stat",
        "none",
        [("{{version}}", "max by (version) (creditline_scorecard_info) == 1")],
    ),
    (
        "Scorecard stability (PSI; > 0.25 a significant shift)",
        "timeseries",
        "none",
        [
            (
                "{{version}} {{characteristic}}",
                "max by (version, characteristic) (creditline_scorecard_psi)",
            )
        ],
    ),
    (
        "Approval rate by segment",
        "timeseries",
        "percentunit",
        [
            (
                "{{segment}}",
                'sum by (segment) (rate(creditline_decision_pd_count{outcome=~"approved|'
                'partially_approved"}[15m])) / sum by (segment) '
                "(rate(creditline_decision_pd_count[15m]))",
            )
        ],
    ),
    (
        "Mean probability of default by segment",
        "timeseries",
        "percentunit",
        [
            (
                "{{segment}}",
                "sum by (segment) (rate(creditline_decision_pd_sum[15m])) / sum by (segment) "
                "(rate(creditline_decision_pd_count[15m]))",
            )
        ],
    ),
    (
        "Shadow: candidate vs live outcomes (requests per second)",
        "timeseries",
        "ops",
        [
            (
                "{{live}} → {{shadow}}",
                "sum by (live, shadow) (rate(creditline_shadow_decisions_total[5m]))",
            )
        ],
    ),
    (
        "Redis round trip p99",
        "timeseries",
        "s",
        [
            (
                "{{operation}}",
                "histogram_quantile(0.99, sum by (le, operation) "
                "(rate(creditline_redis_operation_seconds_bucket[5m])))",
            )
        ],
    ),
    (
        "Dead-letter storm",
        "stat",
        "none",
        [("{{agent}}", "max by (agent) (creditline_dead_letter_storm)")],
    ),
]


def dashboard() -> dict[str, object]:
    """The Grafana dashboard model."""
    panels = []
    for index, (title, kind, unit, targets) in enumerate(PANELS):
        panels.append(
            {
                "id": index + 1,
                "title": title,
                "type": kind,
                "datasource": {"type": "prometheus", "uid": "prometheus"},
                "gridPos": {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "targets": [
                    {
                        "refId": chr(ord("A") + i),
                        "expr": expr,
                        "legendFormat": legend,
                        "datasource": {"type": "prometheus", "uid": "prometheus"},
                    }
                    for i, (legend, expr) in enumerate(targets)
                ],
            }
        )
    return {
        "uid": "creditline",
        "title": "creditline",
        "tags": ["creditline"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "panels": panels,
    }


def render() -> str:
    """The dashboard JSON text."""
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


DASHBOARD_PATH = Path("deploy/grafana/dashboards/creditline.json")


def expressions() -> list[str]:
    """Every PromQL expression the dashboard uses."""
    return [expr for *_, targets in PANELS for _, expr in targets]


if __name__ == "__main__":
    DASHBOARD_PATH.write_text(render())

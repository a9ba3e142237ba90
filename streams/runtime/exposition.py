"""One ``/metrics`` page from several processes' pages (a role-``all`` worker and its fold).

Every process registers the same metric definitions (:mod:`streams.metrics`), so the pages
have the same families; a scraper must see one series per label set, as from one process:

* counters and histograms (every sample: ``_total``, ``_bucket``, ``_count``, ``_sum``) add
  up — each process counts its own records, decisions and batches — except the counters
  every process counts alike (:data:`streams.metrics.COUNTED_IN_EVERY_PROCESS`: each reads
  the policy topic), which take the largest;
* gauges take the largest value: a gauge is either set by one process only (the other
  shows its initial 0: the fold's last batch time, the decider's HTTP requests waiting) or
  reports the same shared fact in both (the policy and scorecard in force, the lag that
  both measure from outside), where the largest is that fact;
* ``_created`` series (when a series began) take the earliest.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from streams.metrics import COUNTED_IN_EVERY_PROCESS

_ADDED = frozenset({"counter", "histogram", "summary"})


def _combine(family: Metric, sample: str, a: float, b: float) -> float:
    if family.name.endswith("_created"):
        return min(a, b)
    if family.type in _ADDED and sample not in COUNTED_IN_EVERY_PROCESS:
        return a + b
    return max(a, b)


def merge_families(pages: Sequence[Iterable[Metric]]) -> list[Metric]:
    """The families of several pages as one page's: see the module's rules."""
    merged: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], Sample]] = {}
    for page in pages:
        for family in page:
            mine = merged.setdefault(family.name, family)
            samples = values.setdefault(family.name, {})
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                seen = samples.get(key)
                if seen is None or mine is family:
                    samples[key] = sample
                else:
                    value = _combine(mine, sample.name, seen.value, sample.value)
                    samples[key] = seen._replace(value=value)
    for name, family in merged.items():
        family.samples = list(values[name].values())
    return list(merged.values())


class _Families:
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def merge_pages(pages: Sequence[str]) -> bytes:
    """Several Prometheus text pages (format 0.0.4) as one."""
    registry = CollectorRegistry(auto_describe=False)
    parsed = [list(text_string_to_metric_families(page)) for page in pages]
    registry.register(_Families(merge_families(parsed)))
    return generate_latest(registry)

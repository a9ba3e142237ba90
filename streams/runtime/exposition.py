"""One ``/metrics`` page from several processes' pages (a role-``all`` worker and its folds).

Every process registers the same metric definitions (:mod:`streams.metrics`), so the pages
have the same families; a scraper must see one series per label set, as from one process:

* counters and histograms (every sample: ``_total``, ``_bucket``, ``_count``, ``_sum``) add
  up — each process counts its own records, decisions and batches — except the counters
  every process counts alike (:data:`streams.metrics.COUNTED_IN_EVERY_PROCESS`: each reads
  the policy topic), which take the largest;
* gauges take the largest value: a gauge is either set by one kind of process only (the
  other shows its initial 0: the fold's last batch time, the decider's HTTP requests
  waiting) or reports the same shared fact in each (the policy and scorecard in force, the
  lag that all measure from outside), where the largest is that fact — except the gauges
  of a share of the work (:data:`streams.metrics.SUMMED_ACROSS_PROCESSES`: the reviews due
  in each fold's partitions; each process's memory and open files), which add up, and the
  time of the last batch stored (:data:`streams.metrics.OLDEST_ACROSS_FOLDS`), which takes the
  oldest of the folds that have stored one: a stalled fold shows;
* ``_created`` series (when a series began) take the earliest.

The merge reads the pages line by line rather than through ``prometheus_client``'s parser:
it runs on the decider's event loop at every scrape, where parsing and rendering the two
pages again took 16–28 ms (every loan request in flight waited as long); line by line it
takes about a millisecond. Both pages come from the same library and metric definitions, so
a series is the same text on both (its name and labels) and only its value differs.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client.utils import floatToGoString

from streams.metrics import (
    COUNTED_IN_EVERY_PROCESS,
    OLDEST_ACROSS_FOLDS,
    SUMMED_ACROSS_PROCESSES,
)

_ADDED = frozenset({"counter", "histogram", "summary"})


def _go_float(value: float) -> str:
    """A value as ``generate_latest`` writes it (so one page merges to itself, byte for byte)."""
    text: str = floatToGoString(value)  # type: ignore[no-untyped-call]
    return text


def _combine(family: str, kind: str, sample: str, a: float, b: float) -> float:
    if family.endswith("_created"):
        return min(a, b)
    if kind in _ADDED and sample not in COUNTED_IN_EVERY_PROCESS:
        return a + b
    if sample in SUMMED_ACROSS_PROCESSES:
        return a + b
    if sample in OLDEST_ACROSS_FOLDS and a and b:
        return min(a, b)
    return max(a, b)


def merge_pages(pages: Sequence[str]) -> bytes:
    """Several Prometheus text pages (format 0.0.4, as ``generate_latest`` writes them) as
    one: see the module's rules. A family's ``HELP`` and ``TYPE`` lines are the first page's
    that has it; its series are in the order they first appear."""
    headers: dict[str, list[str]] = {}  # family → its comment lines, in first-seen order
    kinds: dict[str, str] = {}
    series: dict[str, dict[str, float]] = {}  # family → series text → value
    for page in pages:
        family, new = "", False
        for line in page.splitlines():
            if not line:
                continue
            if line.startswith("#"):
                _, keyword, name, *rest = line.split(" ", 3)
                if name != family:
                    family, new = name, name not in headers
                    if new:
                        headers[name], series[name] = [], {}
                if new:
                    headers[name].append(line)
                if keyword == "TYPE":
                    kinds.setdefault(name, rest[0] if rest else "untyped")
                continue
            key, _, raw = line.rpartition(" ")
            value = float(raw)
            values = series[family]
            seen = values.get(key)
            if seen is None:
                values[key] = value
            else:
                sample = key.partition("{")[0]
                values[key] = _combine(family, kinds.get(family, ""), sample, seen, value)
    lines: list[str] = []
    for family, comments in headers.items():
        lines.extend(comments)
        lines.extend(f"{key} {_go_float(v)}" for key, v in series[family].items())
    return ("\n".join(lines) + "\n").encode() if lines else b""

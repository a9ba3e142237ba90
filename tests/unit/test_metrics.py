"""The metric helpers: a batch observed at once equals each value observed alone."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from streams.metrics import LAG_BUCKETS, observe_all

values = st.lists(
    st.one_of(
        # Bounded, so that no grouping of the sum overflows where another would not.
        st.floats(min_value=-1e12, max_value=1e12),
        st.sampled_from([*LAG_BUCKETS, 0.0, -1.0]),  # on a bound: the bound's own bucket
        st.sampled_from([math.inf, -math.inf, math.nan]),
    ),
    max_size=60,
)


def _histograms() -> tuple[Histogram, Histogram]:
    return tuple(  # type: ignore[return-value]
        Histogram("t_lag", "A lag.", ["topic"], buckets=LAG_BUCKETS, registry=CollectorRegistry())
        for _ in range(2)
    )


def _buckets_and_sum(histogram: Histogram) -> tuple[list[float], float]:
    samples = {
        (s.name, s.labels.get("le")): s.value
        for metric in histogram.collect()
        for s in metric.samples
    }
    buckets = [v for (name, _), v in sorted(samples.items(), key=str) if name.endswith("_bucket")]
    return buckets, samples[("t_lag_sum", None)]


@given(values, values)
def test_observing_a_batch_at_once_equals_observing_each_value(
    first: list[float], second: list[float]
) -> None:
    one_by_one, batched = _histograms()
    one_by_one.labels("t"), batched.labels("t")  # the series exist before any value
    for batch in (first, second):
        for value in batch:
            one_by_one.labels("t").observe(value)
        observe_all(batched.labels("t"), batch)
    expected_buckets, expected_sum = _buckets_and_sum(one_by_one)
    buckets, total = _buckets_and_sum(batched)
    assert buckets == expected_buckets
    if math.isnan(expected_sum):
        assert math.isnan(total)
    elif math.isinf(expected_sum):
        assert total == expected_sum
    else:  # the same values added in another grouping
        assert math.isclose(total, expected_sum, rel_tol=1e-9, abs_tol=1e-6)


def test_an_empty_batch_leaves_the_page_as_it_was() -> None:
    histogram = Histogram("t_empty", "A lag.", registry=(registry := CollectorRegistry()))
    before = generate_latest(registry)
    observe_all(histogram, [])
    assert generate_latest(registry) == before

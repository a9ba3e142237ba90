"""One /metrics page from a role-all worker's processes (the decider and its folds)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from streams.metrics import Metrics
from streams.runtime.exposition import merge_pages


def page(metrics: Metrics) -> str:
    return generate_latest(metrics.registry).decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def two_processes() -> tuple[Metrics, Metrics]:
    decider, folder = Metrics(CollectorRegistry()), Metrics(CollectorRegistry())
    folder.records_applied.labels("t.repayments").inc(7)
    decider.records_applied.labels("t.loan-requests").inc(2)
    folder.records_duplicate.labels("t.repayments").inc(1)
    decider.records_duplicate.labels("t.repayments").inc(0)
    folder.batch_seconds.observe(0.2)
    folder.batch_seconds.observe(0.02)
    decider.decision_seconds.observe(0.004)
    folder.scores.observe(600)
    decider.scores.observe(700)
    folder.last_batch_timestamp.set(1_700_000_000)
    decider.http_decisions_waiting.set(3)
    for m in (decider, folder):
        m.policy_rejected.inc(2)  # both read the same broken policy documents
        m.policy_info.labels("p-1").set(1)
        m.consumer_lag.labels("t.repayments").set(40)
    return decider, folder


def test_counters_and_histograms_add_up_and_gauges_keep_the_fact() -> None:
    decider, folder = two_processes()
    merged = samples(merge_pages([page(decider), page(folder)]).decode())
    assert merged[("creditline_records_applied_total", (("topic", "t.repayments"),))] == 7
    assert merged[("creditline_records_applied_total", (("topic", "t.loan-requests"),))] == 2
    assert merged[("creditline_records_duplicate_total", (("topic", "t.repayments"),))] == 1
    assert merged[("creditline_batch_processing_seconds_count", ())] == 2
    assert merged[("creditline_decision_latency_seconds_count", ())] == 1
    assert merged[("creditline_score_count", ())] == 2
    assert merged[("creditline_score_sum", ())] == 1300
    assert merged[("creditline_last_batch_timestamp_seconds", ())] == 1_700_000_000
    assert merged[("creditline_http_decisions_waiting", ())] == 3
    assert merged[("creditline_policy_info", (("version", "p-1"),))] == 1
    assert merged[("creditline_policy_rejected_total", ())] == 2
    assert merged[("creditline_consumer_lag_records", (("topic", "t.repayments"),))] == 40
    assert merged[("creditline_build_info", tuple(sorted(_build_labels(decider))))] == 1


def test_with_two_folds_each_share_adds_up_and_the_shared_facts_are_kept_once() -> None:
    decider, first = two_processes()
    second = Metrics(CollectorRegistry())
    second.records_applied.labels("t.repayments").inc(5)
    second.last_batch_timestamp.set(1_700_000_009)
    second.policy_rejected.inc(2)
    second.consumer_lag.labels("t.repayments").set(40)
    first.reviews_due.set(4)
    second.reviews_due.set(6)  # each fold's own partitions: the worker has 10 due
    merged = samples(merge_pages([page(decider), page(first), page(second)]).decode())
    assert merged[("creditline_records_applied_total", (("topic", "t.repayments"),))] == 12
    assert merged[("creditline_status_reviews_due", ())] == 10
    # The stalest fold's, not the busiest's: a fold that stopped storing must show.
    assert merged[("creditline_last_batch_timestamp_seconds", ())] == 1_700_000_000
    assert merged[("creditline_policy_rejected_total", ())] == 2
    assert merged[("creditline_consumer_lag_records", (("topic", "t.repayments"),))] == 40


def test_every_series_of_either_page_is_on_the_merged_one_once() -> None:
    decider, folder = two_processes()
    merged_text = merge_pages([page(decider), page(folder)]).decode()
    merged = samples(merged_text)
    assert set(merged) == set(samples(page(decider))) | set(samples(page(folder)))
    # One family per name: a scraper rejects a page that repeats one.
    families = [f.name for f in text_string_to_metric_families(merged_text)]
    assert len(families) == len(set(families))


def test_created_series_take_the_earliest() -> None:
    decider, folder = two_processes()
    a, b = samples(page(decider)), samples(page(folder))
    merged = samples(merge_pages([page(decider), page(folder)]).decode())
    created = [k for k in merged if k[0].endswith("_created")]
    assert created
    for key in created:
        assert merged[key] == min(v for v in (a.get(key), b.get(key)) if v is not None)


def test_one_page_merges_to_itself() -> None:
    decider, _ = two_processes()
    text = page(decider)  # once: the process series (CPU seconds) move between two pages
    assert merge_pages([text]).decode() == text


def test_the_sum_is_the_same_whichever_page_comes_first() -> None:
    decider, folder = two_processes()
    first, second = page(decider), page(folder)  # once each, as above
    assert samples(merge_pages([first, second]).decode()) == samples(
        merge_pages([second, first]).decode()
    )


def _build_labels(metrics: Metrics) -> list[tuple[str, str]]:
    for family in text_string_to_metric_families(page(metrics)):
        if family.name == "creditline_build_info":
            return list(family.samples[0].labels.items())
    raise AssertionError("no build info")


def test_label_values_with_spaces_quotes_and_braces_merge_as_one_series() -> None:
    pages = []
    for count in (2, 3):
        registry = CollectorRegistry()
        counter = Counter("t_odd", "A counter with an awkward label.", ["why"], registry=registry)
        counter.labels('a b} "c" \\ d').inc(count)
        pages.append(generate_latest(registry).decode())
    merged = samples(merge_pages(pages).decode())
    assert merged[("t_odd_total", (("why", 'a b} "c" \\ d'),))] == 5


def test_a_page_without_samples_merges_to_nothing() -> None:
    assert merge_pages([]) == b""
    assert merge_pages(["", ""]) == b""


def test_a_fold_yet_to_store_a_batch_and_the_decider_do_not_pull_the_last_batch_to_zero() -> None:
    decider, folder = two_processes()
    idle = Metrics(CollectorRegistry())  # started, nothing stored yet: its gauge shows 0
    for pages in ([decider, folder, idle], [idle, decider, folder], [folder, idle]):
        merged = samples(merge_pages([page(m) for m in pages]).decode())
        assert merged[("creditline_last_batch_timestamp_seconds", ())] == 1_700_000_000
    alone = samples(merge_pages([page(decider), page(idle)]).decode())
    assert alone[("creditline_last_batch_timestamp_seconds", ())] == 0


def test_the_worker_s_memory_and_open_files_are_all_its_processes() -> None:
    text = """# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 1.0e+08
# HELP process_open_fds Number of open file descriptors.
# TYPE process_open_fds gauge
process_open_fds 30.0
# HELP process_max_fds Maximum number of open file descriptors.
# TYPE process_max_fds gauge
process_max_fds 1024.0
"""
    fold = text.replace("1.0e+08", "2.5e+08").replace("30.0", "12.0")
    merged = samples(merge_pages([text, fold]).decode())
    assert merged[("process_resident_memory_bytes", ())] == 3.5e8
    assert merged[("process_open_fds", ())] == 42
    assert merged[("process_max_fds", ())] == 1024  # a limit, the same fact in each

"""Topic names: each consumed topic maps to the kind of record it carries, and back."""

from __future__ import annotations

import pytest

from streams.core.decoding import RecordKind
from streams.settings import Settings
from streams.topics import Topics


@pytest.fixture
def topics() -> Topics:
    return Topics.from_settings(Settings(topic_repayments="r", topic_spending="s"))


@pytest.mark.parametrize("kind", list(RecordKind))
def test_each_consumed_topic_carries_the_kind_it_is_published_for(
    topics: Topics, kind: RecordKind
) -> None:
    assert topics.kind_of(topics.topic_for(kind)) is kind


def test_every_input_topic_has_a_kind_and_no_other_topic_has_one(topics: Topics) -> None:
    assert {topics.kind_of(topic) for topic in topics.inputs} == set(RecordKind)
    for produced in (topics.loan_decisions, topics.line_status, topics.dead_letter):
        with pytest.raises(KeyError):
            topics.kind_of(produced)

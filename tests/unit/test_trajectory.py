"""A trajectory held as its stored records answers as one made from its changes, decodes
only what is read, and stores the same bytes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from operator import attrgetter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.models import EffectiveStatus
from streams.core import trajectory as trajectory_module
from streams.core.codec import decode_trajectory, encode_trajectory
from streams.core.instants import to_micros
from streams.core.scoring import LineStatus
from streams.core.timeline import change_intervals, checkpoint_before, new_change_intervals
from streams.core.trajectory import STATUS_CODE, Trajectory, change_record, change_records
from tests.properties import examples

START = datetime(2025, 1, 1, tzinfo=UTC)

instants = st.integers(0, 10**6).map(lambda minutes: START + timedelta(minutes=minutes))
maybe_instant = st.none() | instants


@st.composite
def histories(draw: st.DrawFn, least: int = 0) -> tuple[LineStatus, ...]:
    """Changes in time order, as the status machine makes them (the first provisional)."""
    count = draw(st.integers(least, 12))
    gaps = draw(st.lists(st.integers(0, 90 * 24 * 60), min_size=count, max_size=count))
    at, changes = START, []
    for i, gap in enumerate(gaps):
        at += timedelta(minutes=gap)
        status = draw(st.sampled_from(list(EffectiveStatus)))
        changes.append(LineStatus(status, at, i > 0 and draw(st.booleans())))
    return tuple(changes)


def stored(trajectory: Trajectory) -> Trajectory:
    """The trajectory as the store reads it back."""
    return decode_trajectory(encode_trajectory(trajectory))


@settings(max_examples=examples(300))
@given(histories(), maybe_instant, maybe_instant)
def test_a_stored_trajectory_reads_as_the_one_it_was(
    changes: tuple[LineStatus, ...], reviewed: datetime | None, upcoming: datetime | None
) -> None:
    made = Trajectory(changes, reviewed, upcoming)
    read = stored(made)
    assert read.line == made.line == (changes[-1] if changes else None)
    assert read.change_count == len(changes)
    assert (read.reviewed_at, read.next_review) == (reviewed, upcoming)
    assert read == made and made == read and hash(read) == hash(made)
    assert read.changes == changes
    assert encode_trajectory(read) == encode_trajectory(made)
    if changes:
        moment = changes[len(changes) // 2].since
        assert read.line_at(moment) == made.line_at(moment)


@settings(max_examples=examples(300))
@given(histories(), histories(), maybe_instant, maybe_instant)
def test_trajectories_are_equal_as_their_changes_are(
    first: tuple[LineStatus, ...],
    second: tuple[LineStatus, ...],
    reviewed: datetime | None,
    upcoming: datetime | None,
) -> None:
    a, b = Trajectory(first, reviewed, upcoming), Trajectory(second, reviewed, upcoming)
    same = first == second
    assert (stored(a) == stored(b)) is same
    assert (stored(a) == b) is same
    assert (a == b) is same
    other = upcoming + timedelta(minutes=1) if upcoming else START
    assert stored(a) != Trajectory(first, reviewed, other)


@settings(max_examples=examples(300))
@given(histories(), histories(least=1), maybe_instant, maybe_instant)
def test_an_extended_trajectory_is_its_changes_and_the_added_ones(
    earlier: tuple[LineStatus, ...],
    later: tuple[LineStatus, ...],
    reviewed: datetime | None,
    upcoming: datetime | None,
) -> None:
    # The added changes come after the earlier ones, as the machine appends them.
    shift = (earlier[-1].since - START + timedelta(minutes=1)) if earlier else timedelta()
    added = tuple(LineStatus(c.status, c.since + shift, c.settled) for c in later)
    known = stored(Trajectory(earlier, None, None))
    extended = known.extended(change_records(added), reviewed, upcoming)
    whole = Trajectory(earlier + added, reviewed, upcoming)
    assert extended == whole and extended.line == added[-1]
    assert encode_trajectory(extended) == encode_trajectory(whole)
    assert extended.changes[len(earlier) :] == added
    assert change_intervals(known, known) == []
    assert change_intervals(known, extended) == new_change_intervals(earlier, earlier + added)
    if earlier:
        # A history rewritten from its start (a late event).
        rewritten = stored(Trajectory(added, reviewed, upcoming))
        assert change_intervals(known, rewritten) == new_change_intervals(earlier, added)


def _long_history_counting_decodes(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[tuple[LineStatus, ...], Trajectory, list[int]]:
    """300 changes 10 days apart as the store reads them back, and the sizes of the runs of
    changes decoded from now on."""
    history = tuple(
        LineStatus(
            EffectiveStatus.CLOSED if i % 2 else EffectiveStatus.OPEN,
            START + timedelta(days=10 * i),
            i > 0,
        )
        for i in range(300)
    )
    known = stored(Trajectory(history, history[-1].since, None))
    decoded: list[int] = []
    real = trajectory_module._decoded

    def counting(records: bytes, start: int, stop: int) -> tuple[LineStatus, ...]:
        decoded.append(stop - start)
        return real(records, start, stop)

    monkeypatch.setattr(trajectory_module, "_decoded", counting)
    return history, known, decoded


def test_a_visit_decodes_the_last_change_and_the_added_ones_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    history, known, decoded = _long_history_counting_decodes(monkeypatch)
    line = known.line
    assert line == history[-1]
    new = LineStatus(EffectiveStatus.FROZEN, START + timedelta(days=3001), True)
    added = change_record(STATUS_CODE[new.status], to_micros(new.since), new.settled)
    after = known.extended(added, new.since, None)
    assert after.line == new
    assert change_intervals(known, after) == []  # into a freeze: not observed
    encode_trajectory(after)
    assert decoded == [1, 1]  # each a single change (the last read once), never the 300
    assert after.changes == (*history, new)


def _checkpoint_before_by_definition(
    changes: tuple[LineStatus, ...], first_event_at: datetime, moment: datetime
) -> datetime | None:
    """:func:`checkpoint_before` as it read every change (before it bisected)."""
    if moment <= first_event_at:
        return None
    best = None
    for change in changes:
        if change.since < moment:
            best = change.since
    month = datetime(moment.year, moment.month, 1, tzinfo=UTC)
    if month == moment:
        previous = month - timedelta(days=1)
        month = datetime(previous.year, previous.month, 1, tzinfo=UTC)
    if month > first_event_at and (best is None or month > best):
        best = month
    return best


@settings(max_examples=examples(300))
@given(histories(), instants, st.integers(-1, 13))
def test_a_history_is_searched_and_cut_as_read_change_by_change(
    changes: tuple[LineStatus, ...], moment: datetime, index: int
) -> None:
    """Counting, cutting and searching a history (a late event's resumption) by bisection
    answers as reading every change does, in both forms, decoding none of them."""
    if changes and index >= 0:
        moment = changes[min(index, len(changes) - 1)].since  # ties and exact instants
    made = Trajectory(changes, moment, None)
    for form in (made, stored(made)):
        before = sum(1 for c in changes if c.since < moment)
        until = sum(1 for c in changes if c.since <= moment)
        assert form.count_before(moment) == before
        assert form.count_before(moment, inclusive=True) == until
        assert form.line_at(moment) == (changes[until - 1] if until else None)
        cut = form.prefix(until, moment, None)
        assert cut == Trajectory(changes[:until], moment, None)
        assert cut.records() == change_records(changes[:until])
        assert [form.change_at(i) for i in range(len(changes))] == list(changes)
        with pytest.raises(IndexError):
            form.change_at(len(changes))
        first = START - timedelta(days=index)
        assert checkpoint_before(form, first, moment) == _checkpoint_before_by_definition(
            changes, first, moment
        )


def test_a_late_events_resumption_decodes_a_few_changes_of_a_long_history(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    history, known, decoded = _long_history_counting_decodes(monkeypatch)
    late = START + timedelta(days=1505, hours=3)
    at = checkpoint_before(known, START, late)
    assert at == history[150].since  # day 1500: after the month start of day 1492
    cut = known.prefix(known.count_before(at, inclusive=True), at, None)
    assert cut.change_count == 151 and cut.line == history[150]
    assert decoded == [1, 1]  # the change before the late event, and the cut's last


@pytest.mark.parametrize(
    ("records", "problem"),
    [
        (b"\x00" * 8, "not whole changes"),
        (change_record(0, 0, False) + b"\x00" * 8 + bytes((3 * 2,)), "unknown status"),
    ],
)
def test_stored_changes_that_are_not_changes_are_refused(records: bytes, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Trajectory.of_records(records, None, None)


def test_a_stored_trajectory_shorter_than_its_count_is_refused() -> None:
    raw = encode_trajectory(
        Trajectory((LineStatus(EffectiveStatus.OPEN, START, False),), None, None)
    )
    with pytest.raises(ValueError, match="shorter than its changes"):
        decode_trajectory(b"\x05" + raw[1:])


SINCE = attrgetter("since")
#: Changes drawn from a few instants and statuses: equal changes, repeats and ties are common.
_change = st.builds(
    LineStatus,
    st.sampled_from(list(EffectiveStatus)),
    st.integers(0, 6).map(lambda day: START + timedelta(days=day, microseconds=day % 3)),
    st.booleans(),
)


@settings(max_examples=examples(1000))
@given(st.lists(_change, max_size=7), st.lists(_change, max_size=5), st.integers(0, 7))
def test_intervals_read_from_records_are_the_decoded_ones(
    old: list[LineStatus], added: list[LineStatus], cut: int
) -> None:
    # Each in time order, as a trajectory's changes are (appended ones may still tie with
    # or precede the known ones: a rewritten history).
    known, later = tuple(sorted(old, key=SINCE)), tuple(sorted(added, key=SINCE))
    for changes in (known + later, known[:cut] + later, later, known):
        expected = new_change_intervals(known, changes)
        got = change_intervals(Trajectory(known, None, None), Trajectory(changes, None, None))
        assert got == expected
        assert [type(x) for x in got] == [float] * len(expected)


@settings(max_examples=examples(300))
@given(histories(), histories(), instants)
def test_the_records_through_an_instant_compare_as_the_cut_histories(
    one: tuple[LineStatus, ...], other: tuple[LineStatus, ...], moment: datetime
) -> None:
    def cut(changes: tuple[LineStatus, ...]) -> Trajectory:
        trajectory = stored(Trajectory(changes, None, None))
        return trajectory.prefix(trajectory.count_before(moment, inclusive=True), None, None)

    a, b = stored(Trajectory(one, None, None)), stored(Trajectory(other, None, None))
    assert (a.records_through(moment) != b.records_through(moment)) == (cut(one) != cut(other))
    assert a.records_through(moment) == cut(one).records()

"""The Redis adapter on a real Redis: versioned writes, the ledger and its fingerprints, the
readable summary, decisions, the key layout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from streams.adapters.redis import store as store_module
from streams.adapters.redis.layout import (
    APPLY,
    DERIVED_FIELDS,
    LAYOUT_VERSION,
    POLICY_MOVES_PER_CALL,
    SEARCH_BUDGET_BYTES,
    STATE_FIELDS,
)
from streams.adapters.redis.store import LayoutMismatch, UserWrite
from streams.core.codec import encode_state, encode_trajectory
from streams.core.ledger import decode_entry, encode_entry, fingerprint
from streams.settings import Settings
from tests.builders import repayment, spending
from tests.checkpoints import checkpoint_of, default_timelines, standing_of
from tests.support import store_for


async def test_write_applies_only_at_the_expected_version(settings: Settings) -> None:
    store = store_for(settings)
    try:
        event = spending(user_id="u-1")
        checkpoint = checkpoint_of([event])
        fp = fingerprint("s-1")
        loaded = await store.load({"u-1": ["s-1"]})
        assert loaded["u-1"].version == 0
        assert loaded["u-1"].state is None
        entry = encode_entry(event)
        shown = standing_of(checkpoint)
        assert shown is not None
        write = UserWrite("u-1", 0, checkpoint, [entry], ledger_size=1)
        assert await store.save([write]) == []
        # The same write again is stale: version 1 is stored now.
        assert await store.save([write]) == ["u-1"]
        again = await store.load({"u-1": ["s-1", "other"]})
        assert again["u-1"].version == 1
        assert again["u-1"].checkpoint == checkpoint
        assert again["u-1"].ledger_size == 1
        assert again["u-1"].already_applied == frozenset({fp})
        ledger = (await store.load_ledgers(["u-1"]))["u-1"]
        assert ledger.blob == entry
        assert [(e, ledger.digests()[e.event_id]) for e in ledger.events()] == [
            decode_entry(entry, "u-1")
        ]
        assert (await store.read_summary("u-1", default_timelines()))["score"] == str(shown.score)
        assert await store.read_state("nobody") is None
    finally:
        await store.close()


async def test_stored_fields_are_the_exact_bytes_written(settings: Settings) -> None:
    # Non-ASCII text travels to the script as UTF-8 (not \\u escapes): stored unchanged.
    store = store_for(settings)
    try:
        checkpoint = checkpoint_of([spending(user_id="u-3")])
        event = '{"reasons":[{"text":"近期按时还款次数较少 \\" \\u2028 \u2028 😀"}]}'.encode()
        write = UserWrite("u-3", 0, checkpoint, status_event=event)
        assert await store.save([write]) == []
        stored = await store.client.hgetall(store.keys.state("u-3"))
        assert stored[b"status_event"] == event
        assert checkpoint.state is not None
        assert stored[b"state"] == encode_state(checkpoint.state)
        assert stored[b"trajectory"] == encode_trajectory(checkpoint.trajectory)
    finally:
        await store.close()


async def test_all_keys_of_a_user_share_one_hash_tag(settings: Settings) -> None:
    store = store_for(settings)
    try:
        event = spending(user_id="u-7")
        write = UserWrite("u-7", 0, checkpoint_of([event]), [encode_entry(event)])
        await store.save([write])
        await store.schedule({(3, "u-7"): datetime(2026, 12, 1, tzinfo=UTC)})
        keys = sorted(
            [
                k.decode()
                async for k in store.client.scan_iter(match=f"{settings.redis_key_prefix}:*")
            ]
        )
        # One key per user: the ledger and its fingerprints are fields of the state hash
        # (each key costs ~70 B of Redis's own bookkeeping).
        assert keys == [
            f"{settings.redis_key_prefix}:{{reviews-3}}:due",
            f"{settings.redis_key_prefix}:{{u-7}}:state",
        ]
        assert await store.client.hget(keys[1], "ledger") == encode_entry(event)
    finally:
        await store.close()


async def test_a_batch_of_reviews_is_scheduled_and_unscheduled_per_partition(
    settings: Settings,
) -> None:
    store = store_for(settings)
    try:
        day = datetime(2026, 12, 1, tzinfo=UTC)
        await store.schedule(
            {(p, f"u-{i}"): day + timedelta(hours=i) for p in (0, 1) for i in range(300)}
        )
        # Half of partition 0's users get no review any more, the rest move a day later.
        await store.schedule(
            {(0, f"u-{i}"): None if i % 2 else day + timedelta(days=1) for i in range(300)}
        )
        later = day + timedelta(days=30)
        due0 = await store.due_reviews(0, later, 1000)
        assert sorted(user for user, _ in due0) == sorted(f"u-{i}" for i in range(0, 300, 2))
        assert {due for _, due in due0} == {(day + timedelta(days=1)).timestamp()}
        due1 = await store.due_reviews(1, day + timedelta(hours=9), 1000)
        assert [user for user, _ in due1] == [f"u-{i}" for i in range(10)]
    finally:
        await store.close()


async def test_a_policy_brings_every_later_review_forward_a_bounded_number_per_call(
    settings: Settings,
) -> None:
    store = store_for(settings)
    try:
        day = datetime(2026, 12, 1, tzinfo=UTC)
        effective = day + timedelta(days=1)
        later = 2 * POLICY_MOVES_PER_CALL + 500  # three calls
        await store.schedule(
            {(0, f"u-{i}"): effective + timedelta(minutes=1 + i) for i in range(later)}
            | {(0, f"early-{i}"): day + timedelta(minutes=i) for i in range(10)}
            | {
                (1, f"u-{i}"): effective + timedelta(minutes=1 + i)
                for i in range(POLICY_MOVES_PER_CALL)
            }
        )
        assert await store.schedule_policy(0, effective) == later
        due = await store.due_reviews(0, effective, 10 * later)
        assert len(due) == later + 10
        assert {at for user, at in due if user.startswith("u-")} == {effective.timestamp()}
        assert {at for user, at in due if user.startswith("early-")} == {
            (day + timedelta(minutes=i)).timestamp() for i in range(10)
        }
        assert await store.due_reviews(1, effective, 100) == []  # another partition's own
        # Once per instant: a review scheduled later since then stays where it is.
        await store.schedule({(0, "u-0"): effective + timedelta(days=2)})
        assert await store.schedule_policy(0, effective) == 0
        assert len(await store.due_reviews(0, effective, 10 * later)) == later + 9
        # Exactly a call's worth: the second call finds none left and sets the mark.
        assert await store.schedule_policy(1, effective) == POLICY_MOVES_PER_CALL
        assert await store.schedule_policy(1, effective) == 0
    finally:
        await store.close()


async def test_writes_beyond_one_pipelines_bytes_go_out_in_several_all_applied(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "PIPELINE_BYTES", 2_000)  # a few users per pipeline
    store = store_for(settings)
    try:
        users = [f"p-{i}" for i in range(250)]
        events = {u: spending(user_id=u, event_id=f"{u}-s") for u in users}
        writes = [
            UserWrite(u, 0, checkpoint_of([events[u]]), [encode_entry(events[u])], ledger_size=1)
            for u in users
        ]
        assert await store.save(writes) == []
        assert await store.save(writes[:3]) == users[:3]  # stale now: conflicts, in order
        loaded = await store.load({u: [events[u].event_id] for u in users})
        assert {u: loaded[u].version for u in users} == dict.fromkeys(users, 1)
        assert all(loaded[u].checkpoint == writes[i].checkpoint for i, u in enumerate(users))
    finally:
        await store.close()


def test_script_calls_are_cut_into_pipelines_by_their_bytes_never_split() -> None:
    call = (APPLY, ["k" * 10], [b"x" * 90])  # 100 bytes
    calls = [call] * 7
    assert [len(c) for c in store_module._chunks(calls, 250)] == [3, 3, 1]
    assert [len(c) for c in store_module._chunks(calls, 10)] == [1] * 7
    assert [len(c) for c in store_module._chunks(calls, 10_000)] == [7]
    assert store_module._chunks([], 10) == []


async def test_a_decision_is_remembered_once(settings: Settings) -> None:
    store = store_for(settings)
    try:
        assert await store.remember_decision("u-1", "q-1", b"first", 60, "d1") is None
        earlier = await store.remember_decision("u-1", "q-1", b"second", 60, "d2")
        assert earlier is not None
        assert (earlier.request_digest, earlier.payload) == ("d1", b"first")
        ttl = await store.client.ttl(store.keys.decision("u-1", "q-1"))
        assert 0 < ttl <= 60
    finally:
        await store.close()


async def test_a_state_hash_stays_a_compact_listpack(settings: Settings) -> None:
    """With `hash-max-listpack-value 4096` (set by `creditline up`, the cluster launcher and
    compose, and documented for production) a user's hash — state, summary and a passing
    status event — stays a listpack: ~40 % less memory per user than a hashtable."""
    store = store_for(settings)
    try:
        checkpoint = checkpoint_of([spending(user_id="u-9")])
        status_event = b'{"reasons": "' + b"r" * 1500 + b'"}'
        write = UserWrite(
            "u-9",
            0,
            checkpoint,
            status_event=status_event,
        )
        assert await store.save([write]) == []
        await store.clear_status_events({"u-9": status_event})
        key = f"{settings.redis_key_prefix}:{{u-9}}:state"
        encoding = await store.client.object("ENCODING", key)
        assert encoding in (b"listpack", "listpack"), (
            "Redis stores state hashes as hashtables: start it with "
            "`--hash-max-listpack-value 4096` (as `creditline up` does)"
        )
    finally:
        await store.close()


async def test_outboxes_are_cleared_only_where_unchanged(settings: Settings) -> None:
    store = store_for(settings)
    users = [f"u-{i}" for i in range(150)]  # more than one script call serves
    try:
        writes = [
            UserWrite(
                u,
                0,
                checkpoint_of([spending(user_id=u)]),
                status_event=f"ev-{u}".encode(),
            )
            for u in users
        ]
        assert await store.save(writes) == []
        published = {u: f"ev-{u}".encode() for u in users}
        published["u-7"] = b"an older event"  # replaced since: must stay
        await store.clear_status_events(published)
        loaded = await store.load({u: [] for u in users})
        assert loaded["u-7"].pending_status_event == b"ev-u-7"
        assert all(loaded[u].pending_status_event is None for u in users if u != "u-7")
        await store.clear_status_events({})
    finally:
        await store.close()


async def test_an_id_counts_as_maybe_applied_exactly_when_it_occurs_in_the_ledger(
    settings: Settings,
) -> None:
    store = store_for(settings)
    try:
        events = [spending(user_id="u-5", event_id=f"s-{i}") for i in range(3)]
        entries = [encode_entry(e) for e in events]
        write = UserWrite("u-5", 0, checkpoint_of(events), entries, ledger_size=3)
        assert await store.save([write]) == []
        # "s-1" occurs in the ledger as its length byte then the id; "s-" and "-1" do not
        # (other lengths), nor does an id never applied.
        loaded = await store.load({"u-5": ["s-", "-1", "s-2", "s-9", "s-0"]})
        assert loaded["u-5"].already_applied == {fingerprint("s-2"), fingerprint("s-0")}
        # A false match (the token inside another entry's bytes) only means "read the
        # ledger": the ledger's own entries decide, so it is never taken as applied.
        loan = repayment(user_id="u-5", event_id="r-1").model_copy(update={"loan_id": "x\x03s-4"})
        lookalike = UserWrite("u-5", 1, checkpoint_of(events), [encode_entry(loan)])
        assert await store.save([lookalike]) == []
        loaded = await store.load({"u-5": ["s-4"]})
        assert loaded["u-5"].already_applied == {fingerprint("s-4")}
        assert "s-4" not in (await store.load_ledgers(["u-5"]))["u-5"].digests()
    finally:
        await store.close()


async def test_a_loads_ledger_search_is_bounded_and_past_it_the_ledger_decides(
    settings: Settings,
) -> None:
    # Each candidate is a search of its user's ledger: a user with a long ledger and many
    # candidates would hold Redis for seconds. Past the call's budget a user's candidates
    # are all "maybe applied" unsearched (its ledger is read and decides); the users before
    # it were searched exactly, and the budget they spent is gone for those after.
    store = store_for(settings)
    try:
        users = ["u-long-1", "u-long-2", "u-short"]
        for user in users:
            events = [
                spending(user_id=user, event_id=f"{user}-{i:05d}")
                for i in range(3 if user == "u-short" else 2_000)
            ]
            entries = [encode_entry(e) for e in events]
            write = UserWrite(user, 0, checkpoint_of(events[:1]), entries)
            assert await store.save([write]) == []
        length = len(b"".join(await store.read_ledger_raw("u-long-1")))

        def candidates(user: str, count: int) -> list[str]:
            return [f"{user}-00001", *(f"{user}-new-{i}" for i in range(count - 1))]

        def exact(user: str) -> set[int]:
            return {fingerprint(f"{user}-00001")}

        # Alone past the budget: every candidate maybe applied; the ledger decides.
        many = candidates("u-long-2", SEARCH_BUDGET_BYTES // length + 1)
        loaded = await store.load({"u-long-2": many})
        assert loaded["u-long-2"].already_applied == set(map(fingerprint, many))
        digests = (await store.load_ledgers(["u-long-2"]))["u-long-2"].digests()
        assert [c for c in many if c in digests] == ["u-long-2-00001"]
        # Within it: searched exactly.
        within = candidates("u-long-2", SEARCH_BUDGET_BYTES // length)
        assert (await store.load({"u-long-2": within}))["u-long-2"].already_applied == exact(
            "u-long-2"
        )
        # One call serves several users when they share a slot (always on a single Redis):
        # each long user's search costs more than half the budget, so the first is searched
        # and the second is not; a short ledger fits in what is left.
        if not store.slot_bound:
            half = SEARCH_BUDGET_BYTES // 2 // length + 1
            asked = {user: candidates(user, half) for user in users}
            loaded = await store.load(asked)
            assert loaded["u-long-1"].already_applied == exact("u-long-1")
            assert loaded["u-long-2"].already_applied == set(map(fingerprint, asked["u-long-2"]))
            assert loaded["u-short"].already_applied == exact("u-short")
    finally:
        await store.close()


async def test_a_rewrite_replaces_the_ledger(settings: Settings) -> None:
    store = store_for(settings)
    try:
        old = [spending(user_id="u-6", event_id=f"old-{i}") for i in range(3)]
        appended = UserWrite("u-6", 0, checkpoint_of(old), [encode_entry(e) for e in old])
        assert await store.save([appended]) == []
        kept, new = old[2], spending(user_id="u-6", event_id="new-1")
        rewrite = UserWrite(
            "u-6",
            1,
            checkpoint_of([kept, new]),
            [encode_entry(kept), encode_entry(new)],
            rewrite=True,
        )
        assert await store.save([rewrite]) == []
        ids = ["old-0", "old-1", "old-2", "new-1"]
        loaded = await store.load({"u-6": ids})
        assert loaded["u-6"].already_applied == {fingerprint("old-2"), fingerprint("new-1")}
        assert await store.read_ledger_raw("u-6") == [encode_entry(kept), encode_entry(new)]
        ledger = (await store.load_ledgers(["u-6"]))["u-6"]
        assert set(ledger.digests()) == {"old-2", "new-1"}
    finally:
        await store.close()


async def test_the_readable_summary_derives_what_is_not_stored(settings: Settings) -> None:
    store = store_for(settings)
    try:
        checkpoint = checkpoint_of([spending(user_id="u-8")])
        shown = standing_of(checkpoint)
        assert shown is not None and checkpoint.state is not None
        write = UserWrite(
            "u-8",
            0,
            checkpoint,
        )
        assert await store.save([write]) == []
        summary = await store.read_summary("u-8", default_timelines())
        trajectory = checkpoint.trajectory
        assert trajectory.reviewed_at is not None
        assert summary == {
            "ver": "1",
            "at_capacity": "",
            "status": shown.status.value,
            "score": str(shown.score),
            "segment": shown.segment,
            "credit_limit": f"{shown.credit_limit:.2f}",
            "available_limit": f"{shown.available_limit:.2f}",
            "scorer_version": shown.scorer_version,
            "policy_version": shown.policy_version,
            "reviewed_at": trajectory.reviewed_at.isoformat(),
            "next_review": trajectory.next_review.isoformat() if trajectory.next_review else "",
            "status_since": shown.line.since.isoformat(),
            "status_settled": "1" if shown.line.settled else "0",
            "score_as_of": shown.score_as_of.isoformat(),
            "events_applied": str(checkpoint.state.events_applied),
        }
        stored = await store.client.hkeys(store.keys.state("u-8"))
        names = {k.decode() if isinstance(k, bytes) else k for k in stored}
        assert names <= set(STATE_FIELDS)
        assert not names & set(DERIVED_FIELDS)
    finally:
        await store.close()


async def test_a_redis_of_an_older_layout_is_refused_until_rebuilt(settings: Settings) -> None:
    store = store_for(settings)
    try:
        await store.client.set(store.keys.layout(), "2")
        await store.client.sadd(f"{settings.redis_key_prefix}:{{u-1}}:seen", 1)  # layout 2
        with pytest.raises(LayoutMismatch, match="replay --rebuild"):
            await store.ensure_layout()
        assert await store.delete_everything() == 2
        await store.ensure_layout()
        assert await store.layout_version() == LAYOUT_VERSION
    finally:
        await store.close()

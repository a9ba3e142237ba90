"""Per-user state in Redis: one pipelined read and one pipelined atomic write per set of users.

Per user (all keys share the hash tag ``{user_id}``, so one Lua script may touch them all):

* ``:state`` (hash) — ``ver``, the fold at the last review (``state``), the status
  trajectory (``trajectory``), the ``ledger`` (every accepted event in the horizon window,
  binary, :mod:`streams.core.ledger`: what deduplication and a late event's recomputation
  read), ``latest_event_at`` and ``ledger_size`` of the ledger, the readable summary (score,
  status, limit, …) and the ``status_event`` outbox. One key per user: each key costs ~70 B
  of Redis's own.

Per event partition, ``{reviews-<p>}:due`` (sorted set) schedules each user's next review.

Writes are optimistic: each user's write is a Lua script that applies only if the stored
version is the one the batch read (a stale-write check, as Feast's online store does). A
conflict — another worker wrote the same user in between, e.g. during a rebalance or when
a producer put a user's events on two partitions — is reported back so that the caller can
re-read and re-fold that user. The state and the ledger are written together, and the
ledger is what deduplication reads, so "applied" and "recognised as duplicate" can never
disagree.

Longer than most modules: one adapter class implementing the ``StateStore`` port; its
batch reads and writes, review schedule and decision memory share the pipelining, the
script loading and the error translation.

With ``CREDITLINE_REDIS_MIN_REPLICAS`` = *n* > 0, every write pipeline ends with ``WAIT n``
on its own connection: a write only counts as done (and its batch may be committed) once *n*
replicas have it; fewer raises :class:`NotReplicated`, retried like an outage.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import redis.exceptions
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from streams.adapters.redis.client import REPLICA_WAIT_MS, RedisClient, redis_client
from streams.adapters.redis.errors import NotReplicated, translated
from streams.adapters.redis.keys import KeyLayout
from streams.adapters.redis.layout import (
    _INTERNAL_FIELDS,
    APPLY,
    CLEAR_IF_EQUAL,
    LAYOUT_VERSION,
    LEDGERS,
    LOAD,
    OUTBOX_FIELD,
    POLICY_MOVES_PER_CALL,
    SCHEDULE_POLICY,
    ScriptCall,
    readable_summary,
    stored_summary,
)
from streams.core.codec import decode_trajectory, encode_trajectory
from streams.core.instants import from_micros, to_micros
from streams.core.ledger import StoredLedger, fingerprint, id_token, split_entries
from streams.core.state import UserState
from streams.core.timeline import START, Checkpoint, PolicyTimeline
from streams.errors import OperatorActionRequired
from streams.metrics import Metrics
from streams.ports import RememberedDecision, StoredUser, UserWrite
from streams.settings import Settings

#: Most users one script call serves: bounds how long Redis is busy with one call (a loan
#: request's read waits behind it; Redis serves other clients between the calls of a
#: pipeline) while keeping commands per batch few. Under overload 10 took a p99 of 2-8 ms
#: off the decider's Redis reads against 100, at no cost to the fold (docs/sizing.md).
USERS_PER_CALL = 10
#: Most argument bytes one pipeline carries: a batch's writes go out in pipelines of about
#: this much, one after another. One pipeline for a whole batch held its arguments about four
#: times over at once (the calls, the packed commands, their joined chunks, the transport's
#: buffer): 100 MiB more at the peak for 20,000 records.
PIPELINE_BYTES = 4 * 2**20


class LayoutMismatch(OperatorActionRequired):
    """Redis holds keys of another creditline key layout; the message says what to do."""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


__all__ = ["RedisStore", "StoredUser", "UserWrite", "fingerprint"]


_NONE_APPLIED: frozenset[int] = frozenset()


def _micros(raw: bytes | str | None) -> datetime | None:
    return from_micros(int(raw)) if raw is not None else None


def _raw(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def _checkpoint(
    user_id: str, state: bytes | str | None, trajectory: bytes | str | None
) -> Checkpoint:
    if trajectory is None:
        return START
    # The fold stays as stored until read: the compiled machine takes the bytes themselves.
    return Checkpoint.of_stored(
        decode_trajectory(_raw(trajectory)), user_id, _raw(state) if state else None
    )


@dataclass
class RedisStore:
    """creditline's Redis adapter, the same on a single Redis and on a Redis Cluster."""

    client: RedisClient
    keys: KeyLayout
    metrics: Metrics
    #: Replicas that must acknowledge every write (``WAIT``); 0: none waited for.
    min_replicas: int = 0
    slot_bound: bool = field(init=False)
    #: A write went out whose replication was not confirmed (its wait failed, or its reply
    #: was lost): the next wait must cover it.
    _unconfirmed: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        # A cluster refuses a script whose keys span hash slots.
        self.slot_bound = isinstance(self.client, RedisCluster)

    @classmethod
    def connect(cls, settings: Settings, metrics: Metrics) -> RedisStore:
        """A store on a new client for the configured Redis (see :func:`redis_client`)."""
        return cls(
            redis_client(settings),
            KeyLayout(settings.redis_key_prefix),
            metrics,
            min_replicas=settings.redis_min_replicas,
        )

    async def close(self) -> None:
        """Release the connection pool."""
        await self.client.aclose()

    @contextmanager
    def _timed(self, operation: str) -> Iterator[None]:
        """Time a Redis round trip; its errors leave as creditline's (:mod:`.errors`)."""
        started = time.perf_counter()
        try:
            with translated():
                yield
        finally:
            self.metrics.redis_seconds.labels(operation).observe(time.perf_counter() - started)

    async def _execute(self, pipe: Any, *, durable: bool) -> list[Any]:
        """Run a pipeline; errors come back per command. A ``durable`` one (writes) ends, on
        its own connection, with ``WAIT min_replicas`` when replicas are required — WAIT
        covers the writes its connection sent — and raises :class:`NotReplicated` when too
        few acknowledged. After a write whose replication is unconfirmed, a fence write goes
        before the WAIT: the replication stream is ordered, so a replica that has the fence
        has that earlier write too, whichever connection it went out on."""
        if not (durable and self.min_replicas):
            return list(await pipe.execute(raise_on_error=False))
        fenced = self._unconfirmed
        if fenced:
            pipe.set(self.keys.replication_fence(), "1")
        pipe.execute_command("WAIT", self.min_replicas, REPLICA_WAIT_MS)
        self._unconfirmed = True  # until a WAIT says otherwise (the reply may never come)
        replies = list(await pipe.execute(raise_on_error=False))
        acknowledged = replies.pop()
        if fenced:
            replies.pop()
        if isinstance(acknowledged, Exception):
            raise acknowledged
        if int(acknowledged) < self.min_replicas:
            raise NotReplicated(
                f"{acknowledged} of {self.min_replicas} replicas acknowledged a write "
                f"within {REPLICA_WAIT_MS} ms"
            )
        self._unconfirmed = False
        return replies

    async def _confirm_replicated(self) -> None:
        """Wait until the replicas have every write this store sent (a failed wait is owed
        before a batch decides what is stored: re-read users must not count as stored)."""
        if self.min_replicas and self._unconfirmed:
            with self._timed("wait_replicas"):
                async with self.client.pipeline(transaction=False) as pipe:
                    _raise_first(await self._execute(pipe, durable=True))

    async def _pipelined(self, calls: Sequence[ScriptCall], *, durable: bool) -> list[Any]:
        # EVALSHA as a raw command: redis-py 8.1's cluster pipeline blocks its `evalsha`
        # method (and `register_script` would not load scripts there), while the raw command
        # is routed by its keys like any other. Errors come back per call.
        async with self.client.pipeline(transaction=False) as pipe:
            for script, keys, args in calls:
                pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
            return await self._execute(pipe, durable=durable)

    async def _run_scripts(
        self, calls: Sequence[ScriptCall], *, durable: bool = False
    ) -> list[Any]:
        """Run script calls in one pipeline (one per cluster node); a server that does not
        know a script yet (new, restarted, failed over) gets it loaded and the call rerun.
        ``durable``: the scripts write (see :meth:`_execute`)."""
        results: list[Any] = []
        for chunk in _chunks(calls, PIPELINE_BYTES):
            results += await self._pipelined(chunk, durable=durable)
        missing = [
            i for i, r in enumerate(results) if isinstance(r, redis.exceptions.NoScriptError)
        ]
        if missing:
            for script in {calls[i][0] for i in missing}:
                await self.client.script_load(script.source)  # on a cluster: every primary
            rerun = await self._pipelined([calls[i] for i in missing], durable=durable)
            for i, result in zip(missing, rerun, strict=True):
                results[i] = result
        _raise_first(results)
        return results

    async def ping(self) -> bool:
        """True when Redis answers."""
        with self._timed("ping"):
            return bool(await self.client.ping())

    async def layout_version(self) -> str | None:
        """The key layout version stored under this prefix; None on an empty Redis, ``"1"``
        when user state of the previous layout (a state without a trajectory) is found."""
        with self._timed("layout"):
            stored = await self.client.get(self.keys.layout())
            if stored is not None:
                return _text(stored)
            async for key in self.client.scan_iter(match=self.keys.state_pattern(), count=1000):
                has_trajectory = await self.client.hget(key, "trajectory") is not None
                return LAYOUT_VERSION if has_trajectory else "1"
        return None

    async def mark_layout(self) -> None:
        """Record that this prefix holds the current key layout."""
        with self._timed("layout"):
            await self.client.set(self.keys.layout(), LAYOUT_VERSION)

    async def ensure_layout(self) -> None:
        """Mark an empty Redis with this layout; refuse one holding an older layout."""
        found = await self.layout_version()
        if found is None:
            await self.mark_layout()
        elif found != LAYOUT_VERSION:
            raise LayoutMismatch(
                f"Redis holds creditline's key layout {found} under prefix "
                f"'{self.keys.prefix}', this version writes layout {LAYOUT_VERSION}: rebuild "
                "it from the topics with `creditline replay --rebuild` (deletes creditline's "
                "keys first), with no worker running"
            )

    async def delete_everything(self) -> int:
        """Delete every key under this prefix (``replay --rebuild``); returns how many."""
        deleted = 0
        batch: list[Any] = []
        with self._timed("delete"):
            async for key in self.client.scan_iter(match=f"{self.keys.prefix}:*", count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    deleted += await self._delete(batch)
                    batch = []
            if batch:
                deleted += await self._delete(batch)
        return deleted

    async def _delete(self, keys: Sequence[Any]) -> int:
        # One DEL per key: on a cluster the keys live in many slots (the pipeline routes each).
        async with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.delete(key)
            return sum(int(n) for n in await pipe.execute())

    def _groups(self, users: Sequence[str]) -> list[list[str]]:
        """Users in groups that one script call may serve (same hash slot on a cluster)."""
        if not self.slot_bound:
            return [
                list(users[i : i + USERS_PER_CALL]) for i in range(0, len(users), USERS_PER_CALL)
            ]
        by_slot: dict[int, list[str]] = {}
        for user in users:
            by_slot.setdefault(key_slot(self.keys.state(user).encode()), []).append(user)
        return [
            group[i : i + USERS_PER_CALL]
            for group in by_slot.values()
            for i in range(0, len(group), USERS_PER_CALL)
        ]

    def _user_keys(self, users: Sequence[str]) -> list[str]:
        return [self.keys.state(user) for user in users]

    async def load(self, candidates: Mapping[str, Sequence[str]]) -> dict[str, StoredUser]:
        """Read version, checkpoint and which candidate event ids may be applied, per user."""
        groups = self._groups(list(candidates))
        calls: list[ScriptCall] = [
            (
                LOAD,
                self._user_keys(group),
                [b"".join(map(id_token, candidates[u])) for u in group],
            )
            for group in groups
        ]
        await self._confirm_replicated()
        with self._timed("load"):
            replies = await self._run_scripts(calls)
        result: dict[str, StoredUser] = {}
        for group, reply in zip(groups, replies, strict=True):
            for user, (fields, flags) in zip(group, reply, strict=True):
                version, state, trajectory, latest, size, pending, written = fields
                applied = _NONE_APPLIED
                if any(flags):  # rare: a redelivery, or an event id reused
                    ids = candidates[user]
                    applied = frozenset(
                        fingerprint(event_id)
                        for event_id, flag in zip(ids, flags, strict=True)
                        if flag
                    )
                result[user] = StoredUser(
                    version=int(version) if version is not None else 0,
                    checkpoint=_checkpoint(user, state, trajectory),
                    already_applied=applied,
                    latest_event_at=_micros(latest),
                    ledger_size=int(size) if size is not None else 0,
                    pending_status_event=bytes(pending) if pending is not None else None,
                    written_at=_micros(written),
                )
        return result

    async def load_ledgers(self, users: Sequence[str]) -> dict[str, StoredLedger]:
        """Each user's ledger (decoded as far as it is used)."""
        if not users:
            return {}
        groups = self._groups(list(users))
        calls: list[ScriptCall] = [(LEDGERS, self._user_keys(group), []) for group in groups]
        with self._timed("load_ledger"):
            replies = await self._run_scripts(calls)
        return {
            user: StoredLedger(blob or b"", user)
            for group, reply in zip(groups, replies, strict=True)
            for user, blob in zip(group, reply, strict=True)
        }

    @staticmethod
    def _write_arguments(write: UserWrite) -> list[bytes]:
        """The six script arguments of one user's write (see ``APPLY``)."""
        checkpoint = write.checkpoint
        fields: list[str] = [
            "ver",
            str(write.expected_version + 1),
            "ledger_size",
            str(write.ledger_size),
        ]
        if write.latest_event_at is not None:
            fields.extend(("latest_event_at", str(to_micros(write.latest_event_at))))
        if write.written_at is not None:
            fields.extend(("written_at", str(to_micros(write.written_at))))
        summary = stored_summary(checkpoint.trajectory)
        summary["at_capacity"] = write.at_capacity
        for name, value in summary.items():
            fields.extend((name, value))
        if write.status_event is not None:
            fields.extend((OUTBOX_FIELD, write.status_event.decode()))
        return [
            str(write.expected_version).encode(),
            # Non-ASCII text (reasons in Chinese) goes as UTF-8 rather than \\u escapes: the
            # script's cjson.decode gives the same bytes either way.
            # Copied to its own size: orjson's result keeps its whole working buffer
            # allocated (32 KiB for 1 KiB of JSON), 70 MiB for a batch's writes at once.
            bytes(memoryview(orjson.dumps(fields))),
            b"1" if write.rewrite else b"0",
            b"".join(write.entries),
            # Binary, so beside the JSON: an empty state is "no fold yet" (nothing is set).
            checkpoint.stored_state() or b"",
            encode_trajectory(checkpoint.trajectory),
        ]

    async def save(self, writes: Sequence[UserWrite]) -> list[str]:
        """Apply every write atomically per user; return the users whose version conflicted."""
        if not writes:
            return []
        by_user = {w.user_id: w for w in writes}
        groups = self._groups(list(by_user))
        calls: list[ScriptCall] = [
            (
                APPLY,
                self._user_keys(group),
                [arg for u in group for arg in self._write_arguments(by_user[u])],
            )
            for group in groups
        ]
        with self._timed("save"):
            replies = await self._run_scripts(calls, durable=True)
        return [
            user
            for group, reply in zip(groups, replies, strict=True)
            for user, ok in zip(group, reply, strict=True)
            if not ok
        ]

    async def clear_status_events(self, published: Mapping[str, bytes]) -> None:
        """Empty the outbox of users whose status event was published (if still the same)."""
        if not published:
            return
        calls: list[ScriptCall] = [
            (
                CLEAR_IF_EQUAL,
                [self.keys.state(user) for user in group],
                [OUTBOX_FIELD, *(published[user] for user in group)],
            )
            for group in self._groups(list(published))
        ]
        with self._timed("clear_outbox"):
            await self._run_scripts(calls, durable=True)

    # ---- the review schedule ---------------------------------------------------------------
    async def schedule(self, reviews: Mapping[tuple[int, str], datetime | None]) -> None:
        """Set each (partition, user)'s next review instant (None: none due, unscheduled)."""
        if not reviews:
            return
        # One ZADD and one ZREM per partition, not one per user: a batch names thousands.
        due_at: dict[str, dict[str, float]] = defaultdict(dict)
        unscheduled: dict[str, list[str]] = defaultdict(list)
        for (partition, user), due in reviews.items():
            key = self.keys.reviews(partition)
            if due is None:
                unscheduled[key].append(user)
            else:
                due_at[key][user] = due.timestamp()
        with self._timed("schedule"):
            async with self.client.pipeline(transaction=False) as pipe:
                for key, users in unscheduled.items():
                    pipe.zrem(key, *users)
                for key, members in due_at.items():
                    pipe.zadd(key, members)
                _raise_first(await self._execute(pipe, durable=True))

    async def due_reviews(
        self, partition: int, now: datetime, limit: int
    ) -> list[tuple[str, float]]:
        """Users of a partition whose review is due at ``now``: (user, due Unix seconds),
        earliest first."""
        with self._timed("due_reviews"):
            rows: list[Any] = await self.client.zrange(
                self.keys.reviews(partition),
                "-inf",
                now.timestamp(),
                byscore=True,
                offset=0,
                num=limit,
                withscores=True,
            )
        return [(_text(user), float(score)) for user, score in rows]

    async def schedule_policy(self, partition: int, effective: datetime) -> int:
        """Bring every review of a partition later than ``effective`` forward to it (a policy
        taking effect reviews every user), once per instant; returns how many moved."""
        keys = [self.keys.reviews(partition), self.keys.reviews_policy_mark(partition)]
        args: list[str | bytes | int] = [
            repr(effective.timestamp()),
            str(to_micros(effective)),
            POLICY_MOVES_PER_CALL,
        ]
        moved = 0
        # A bounded number per call: Redis serves other clients between them. Users written
        # meanwhile with a later review may be brought forward too: one review more, which
        # changes nothing (reviews are idempotent).
        while True:
            with self._timed("schedule_policy"):
                (count,) = await self._run_scripts([(SCHEDULE_POLICY, keys, args)], durable=True)
            if int(count) < 0:
                return moved
            moved += int(count)
            if int(count) < POLICY_MOVES_PER_CALL:
                return moved

    # ---- reads for decisions and operators --------------------------------------------------
    async def read_user(self, user_id: str) -> StoredUser:
        """A user's stored checkpoint (one round trip; no fingerprints)."""
        with self._timed("read_state"):
            version, state, trajectory, latest, size, full = await self.client.hmget(
                self.keys.state(user_id),
                ["ver", "state", "trajectory", "latest_event_at", "ledger_size", "at_capacity"],
            )
        return StoredUser(
            version=int(version) if version is not None else 0,
            checkpoint=_checkpoint(user_id, state, trajectory),
            already_applied=frozenset(),
            latest_event_at=_micros(latest),
            ledger_size=int(size) if size is not None else 0,
            at_capacity=_text(full) if full is not None else "",
        )

    async def read_ledger_raw(self, user_id: str) -> list[bytes]:
        """A user's ledger entries as stored (any order)."""
        with self._timed("load_ledger"):
            blob = await self.client.hget(self.keys.state(user_id), "ledger")
        return split_entries(_raw(blob) if blob is not None else b"")

    async def read_ledger(self, user_id: str) -> list[Any]:
        """A user's ledger events (any order)."""
        ledgers = await self.load_ledgers([user_id])
        return ledgers[user_id].events()

    async def read_state(self, user_id: str) -> UserState | None:
        """The fold at the user's last review, or None when nothing is known."""
        return (await self.read_user(user_id)).state

    async def read_summary(self, user_id: str, timelines: PolicyTimeline) -> dict[str, str]:
        """A user's readable summary (score, limit, status, …): the stored readable fields
        and those derived from the checkpoint under ``timelines``."""
        with self._timed("read_summary"):
            raw = await self.client.hgetall(self.keys.state(user_id))
        stored = {_text(k): _text(v) for k, v in raw.items() if _text(k) not in _INTERNAL_FIELDS}
        trajectory = raw.get(b"trajectory")
        checkpoint = _checkpoint(user_id, raw.get(b"state"), trajectory)
        return readable_summary(stored, checkpoint if trajectory else None, timelines)

    async def remember_decision(
        self, user_id: str, request_id: str, payload: bytes, ttl_seconds: int, digest: str = ""
    ) -> RememberedDecision | None:
        """Store a decision (with the digest of the request it answers) unless one exists;
        return the earlier one if it does."""
        with self._timed("remember_decision"):
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.set(
                    self.keys.decision(user_id, request_id),
                    digest.encode() + b"\n" + payload,
                    nx=True,
                    get=True,
                    ex=ttl_seconds,
                )
                replies = await self._execute(pipe, durable=True)
            _raise_first(replies)
        (previous,) = replies
        return _remembered(previous)

    async def recall_decision(self, user_id: str, request_id: str) -> RememberedDecision | None:
        """The decision remembered for a request of a user (what was published), if any."""
        with self._timed("recall_decision"):
            stored = await self.client.get(self.keys.decision(user_id, request_id))
        return _remembered(stored)

    async def scan_states(self, count: int = 500) -> AsyncIterator[tuple[str, UserState]]:
        """Every user's state (SCAN, so safe on a live Redis; on a cluster, every primary)."""
        with translated():
            async for key in self.client.scan_iter(match=self.keys.state_pattern(), count=count):
                user = self.keys.user_of_state_key(_text(key))
                state = await self.read_state(user)
                if state is not None:
                    yield user, state


def _remembered(stored: Any) -> RememberedDecision | None:
    """A decision key's value (the request's digest, a newline, the published decision)."""
    if stored is None:
        return None
    raw = stored if isinstance(stored, bytes) else str(stored).encode()
    head, _, body = raw.partition(b"\n")
    return RememberedDecision(head.decode(), body)


def _raise_first(replies: Sequence[Any]) -> None:
    """Raise the first error among a pipeline's replies."""
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply


def _chunks(calls: Sequence[ScriptCall], limit: int) -> list[Sequence[ScriptCall]]:
    """``calls`` in order, cut where their arguments pass ``limit`` bytes (a call is never
    split; each chunk holds at least one)."""
    chunks: list[Sequence[ScriptCall]] = []
    start, size = 0, 0
    for i, (_, keys, args) in enumerate(calls):
        if size >= limit and i > start:
            chunks.append(calls[start:i])
            start, size = i, 0
        size += sum(len(k) for k in keys) + sum(
            len(a) if isinstance(a, str | bytes) else 8 for a in args
        )
    if start < len(calls):
        chunks.append(calls[start:])
    return chunks

"""Per-user state in Redis: one pipelined read and one pipelined atomic write per batch.

Writes are optimistic: each user's write is a Lua script that applies only if the stored
version is the one the batch read (a stale-write check, as Feast's online store does). A
conflict — another worker wrote the same user in between, e.g. during a rebalance or when
a producer put a user's events on two partitions — is reported back so that the caller can
re-read and re-fold that user. The state and the fingerprints of the events it contains are
written together, so "applied" and "recognised as duplicate" can never disagree.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import redis.exceptions
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from schemas.models import EffectiveStatus
from streams.adapters.redis_client import RedisClient, redis_client
from streams.core.codec import decode_state, encode_state
from streams.core.scoring import LineStatus
from streams.core.state import UserState
from streams.keys import KeyLayout
from streams.metrics import Metrics
from streams.settings import Settings

# Both scripts serve many users per call (one round trip and one command for a whole group
# of users, instead of one per user): KEYS are each user's state hash and seen set, in
# order; ARGV holds one argument per user. Redis Cluster requires a call's keys to share a
# hash slot, so there the caller groups users by slot.

# ARGV[i]: user i's candidate fingerprints, space separated. Returns, per user, the stored
# fields and a flag per fingerprint telling whether it is already applied.
_LOAD_LUA = """
local out = {}
for i = 1, #ARGV do
  local fields = redis.call('HMGET', KEYS[2 * i - 1], 'ver', 'state', 'status',
                            'status_since', 'status_settled', 'status_event')
  local fps = {}
  for fp in string.gmatch(ARGV[i], '%S+') do fps[#fps + 1] = fp end
  local flags = {}
  for first = 1, #fps, 4000 do
    local last = math.min(first + 3999, #fps)
    for _, flag in ipairs(redis.call('SMISMEMBER', KEYS[2 * i], unpack(fps, first, last))) do
      flags[#flags + 1] = flag
    end
  end
  out[i] = {fields, flags}
end
return out
"""

# ARGV[i]: JSON [expected version, [field, value, ...], [fingerprint, ...]] of user i.
# Returns per user 1 when applied, 0 on a version conflict (that user is left untouched).
_APPLY_LUA = """
local results = {}
for i = 1, #ARGV do
  local write = cjson.decode(ARGV[i])
  local current = redis.call('HGET', KEYS[2 * i - 1], 'ver') or '0'
  if current ~= write[1] then
    results[i] = 0
  else
    redis.call('HSET', KEYS[2 * i - 1], unpack(write[2]))
    local fps = write[3]
    for first = 1, #fps, 4000 do
      redis.call('SADD', KEYS[2 * i], unpack(fps, first, math.min(first + 3999, #fps)))
    end
    results[i] = 1
  end
end
return results
"""

# KEYS: users' state hashes. ARGV[1]: a field; ARGV[i + 1]: its expected value in KEYS[i].
# Deletes each user's field only if unchanged; returns how many were deleted.
_CLEAR_IF_EQUAL_LUA = """
local cleared = 0
for i = 1, #KEYS do
  if redis.call('HGET', KEYS[i], ARGV[1]) == ARGV[i + 1] then
    cleared = cleared + redis.call('HDEL', KEYS[i], ARGV[1])
  end
end
return cleared
"""

#: Most users one script call serves: bounds how long Redis is busy with one call (a loan
#: request's read waits behind it) while keeping round trips and commands per batch few.
USERS_PER_CALL = 100

#: Hash field holding a status-change record not yet confirmed as published (an outbox).
OUTBOX_FIELD = "status_event"
#: Hash fields of the stored line status (written by ``state_summary``).
LINE_FIELDS = ("status", "status_since", "status_settled")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def fingerprint(event_id: str) -> int:
    """A signed 64-bit digest of an event id: Redis stores sets of these as compact intsets.

    Collisions need ~2**32 events for one user, so they are not a practical concern.
    """
    digest = hashlib.blake2b(event_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@dataclass(frozen=True, slots=True)
class StoredUser:
    """What a batch needs to know about one user before folding."""

    version: int
    state: UserState | None
    already_applied: frozenset[int]
    line: LineStatus | None = None
    pending_status_event: bytes | None = None


def _line(
    status: bytes | str | None, since: bytes | str | None, settled: bytes | str | None
) -> LineStatus | None:
    if status is None or since is None:
        return None
    return LineStatus(
        EffectiveStatus(_text(status)),
        datetime.fromisoformat(_text(since)),
        settled=settled is None or _text(settled) == "1",
    )


@dataclass(frozen=True, slots=True)
class UserWrite:
    """A new state for one user, valid only if the stored version is still ``expected_version``."""

    user_id: str
    expected_version: int
    state: UserState
    summary: Mapping[str, str]
    fingerprints: Sequence[int]
    status_event: bytes | None = None


@dataclass(frozen=True)
class LuaScript:
    """A Lua script run by its SHA1 digest (EVALSHA); all its KEYS are in one hash slot."""

    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


#: One script call: the script, its keys (one slot's) and its arguments.
ScriptCall = tuple[LuaScript, Sequence[str], Sequence[str | bytes | int]]

APPLY = LuaScript(_APPLY_LUA)
LOAD = LuaScript(_LOAD_LUA)
CLEAR_IF_EQUAL = LuaScript(_CLEAR_IF_EQUAL_LUA)


@dataclass
class RedisStore:
    """creditline's Redis adapter, the same on a single Redis and on a Redis Cluster."""

    client: RedisClient
    keys: KeyLayout
    metrics: Metrics
    slot_bound: bool = field(init=False)

    def __post_init__(self) -> None:
        # A cluster refuses a script whose keys span hash slots.
        self.slot_bound = isinstance(self.client, RedisCluster)

    @classmethod
    def connect(cls, settings: Settings, metrics: Metrics) -> RedisStore:
        """A store on a new client for the configured Redis (see :func:`redis_client`)."""
        return cls(redis_client(settings), KeyLayout(settings.redis_key_prefix), metrics)

    async def close(self) -> None:
        """Release the connection pool."""
        await self.client.aclose()

    @contextmanager
    def _timed(self, operation: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        except redis.exceptions.RedisClusterException as exc:
            # A cluster client that reaches no node says so with this generic error; the
            # cause tells an outage (retried like any connection error) from a bug.
            if isinstance(exc.__cause__, redis.exceptions.ConnectionError | OSError):
                raise redis.exceptions.ConnectionError(str(exc)) from exc
            raise
        finally:
            self.metrics.redis_seconds.labels(operation).observe(time.perf_counter() - started)

    async def _pipelined(self, calls: Sequence[ScriptCall]) -> list[Any]:
        # EVALSHA as a raw command: redis-py 8.1's cluster pipeline blocks its `evalsha`
        # method (and `register_script` would not load scripts there), while the raw command
        # is routed by its keys like any other. Errors come back per call.
        async with self.client.pipeline(transaction=False) as pipe:
            for script, keys, args in calls:
                pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
            return list(await pipe.execute(raise_on_error=False))

    async def _run_scripts(self, calls: Sequence[ScriptCall]) -> list[Any]:
        """Run script calls in one pipeline (one per cluster node); a server that does not
        know a script yet (new, restarted, failed over) gets it loaded and the call rerun."""
        results = await self._pipelined(calls)
        missing = [
            i for i, r in enumerate(results) if isinstance(r, redis.exceptions.NoScriptError)
        ]
        if missing:
            for script in {calls[i][0] for i in missing}:
                await self.client.script_load(script.source)  # on a cluster: every primary
            rerun = await self._pipelined([calls[i] for i in missing])
            for i, result in zip(missing, rerun, strict=True):
                results[i] = result
        for result in results:
            if isinstance(result, Exception):
                raise result
        return results

    async def ping(self) -> bool:
        """True when Redis answers."""
        with self._timed("ping"):
            return bool(await self.client.ping())

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
        keys: list[str] = []
        for user in users:
            keys.extend((self.keys.state(user), self.keys.seen(user)))
        return keys

    async def load(self, candidates: Mapping[str, Sequence[int]]) -> dict[str, StoredUser]:
        """Read version, state and which candidate fingerprints are applied, for each user."""
        groups = self._groups(list(candidates))
        calls: list[ScriptCall] = [
            (LOAD, self._user_keys(group), [" ".join(map(str, candidates[u])) for u in group])
            for group in groups
        ]
        with self._timed("load"):
            replies = await self._run_scripts(calls)
        result: dict[str, StoredUser] = {}
        for group, reply in zip(groups, replies, strict=True):
            for user, (fields, flags) in zip(group, reply, strict=True):
                version, raw, status, since, settled, pending = fields
                fps = candidates[user]
                applied = frozenset(fp for fp, flag in zip(fps, flags, strict=True) if flag)
                result[user] = StoredUser(
                    version=int(version) if version is not None else 0,
                    state=decode_state(raw) if raw is not None else None,
                    already_applied=applied,
                    line=_line(status, since, settled),
                    pending_status_event=bytes(pending) if pending is not None else None,
                )
        return result

    @staticmethod
    def _write_argument(write: UserWrite) -> bytes:
        fields: list[str] = [
            "ver",
            str(write.expected_version + 1),
            "state",
            encode_state(write.state).decode(),
        ]
        for name, value in write.summary.items():
            fields.extend((name, value))
        if write.status_event is not None:
            fields.extend((OUTBOX_FIELD, write.status_event.decode()))
        # Fingerprints travel as strings: Lua numbers are doubles and would round them.
        doc = [str(write.expected_version), fields, [str(fp) for fp in write.fingerprints]]
        # Non-ASCII text (reasons in Chinese) goes as UTF-8 rather than \u escapes: the
        # script's cjson.decode gives the same bytes either way.
        return orjson.dumps(doc)

    async def save(self, writes: Sequence[UserWrite]) -> list[str]:
        """Apply every write atomically per user; return the users whose version conflicted."""
        if not writes:
            return []
        by_user = {w.user_id: w for w in writes}
        groups = self._groups(list(by_user))
        calls: list[ScriptCall] = [
            (APPLY, self._user_keys(group), [self._write_argument(by_user[u]) for u in group])
            for group in groups
        ]
        with self._timed("save"):
            replies = await self._run_scripts(calls)
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
            await self._run_scripts(calls)

    async def read_state(self, user_id: str) -> UserState | None:
        """The folded state of one user, or None when nothing is known."""
        state, _ = await self.read_user(user_id)
        return state

    async def read_user(self, user_id: str) -> tuple[UserState | None, LineStatus | None]:
        """The folded state and stored line status of one user (one round trip)."""
        with self._timed("read_state"):
            raw, status, since, settled = await self.client.hmget(
                self.keys.state(user_id), ["state", *LINE_FIELDS]
            )
        state = decode_state(raw) if raw is not None else None
        return state, _line(status, since, settled)

    async def read_summary(self, user_id: str) -> dict[str, str]:
        """The operator-facing fields of a user's state hash (score, limit, status, …)."""
        with self._timed("read_summary"):
            raw = await self.client.hgetall(self.keys.state(user_id))
        hidden = {"state", OUTBOX_FIELD}
        return {_text(k): _text(v) for k, v in raw.items() if _text(k) not in hidden}

    async def remember_decision(
        self, user_id: str, request_id: str, payload: bytes, ttl_seconds: int
    ) -> bytes | None:
        """Store a decision unless one exists; return the earlier one if it does."""
        with self._timed("remember_decision"):
            previous = await self.client.set(
                self.keys.decision(user_id, request_id),
                payload,
                nx=True,
                get=True,
                ex=ttl_seconds,
            )
        if previous is None:
            return None
        return previous if isinstance(previous, bytes) else str(previous).encode()

    async def scan_states(self, count: int = 500) -> AsyncIterator[tuple[str, UserState]]:
        """Every user's state (SCAN, so safe on a live Redis; on a cluster, every primary)."""
        async for key in self.client.scan_iter(match=self.keys.state_pattern(), count=count):
            user = self.keys.user_of_state_key(_text(key))
            state = await self.read_state(user)
            if state is not None:
                yield user, state

"""The Redis layout of a user's state: every hash field and every Lua script, in one place
(the key names are in :mod:`.keys`). ``docs/redis-layout.md`` is generated from this module
and :mod:`.keys` (``python -m streams.devtools.docs``; a test fails when it drifts).

Invariants the scripts keep, per user and atomically:

* a write applies only if ``ver`` is still the version its batch read (a stale-write check),
  and then moves ``ver`` on by one;
* the fold (``state``), the status history (``trajectory``), the ledger and the seen set
  change together: an event is in the ledger exactly when its fingerprint is in the seen set,
  so "applied" and "recognised as duplicate" never disagree;
* ``status_event`` (the outbox) is only ever cleared while it still holds what was published.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from streams.core.scoring import Assessment
from streams.core.state import UserState
from streams.core.timeline import Trajectory

#: The key layout this code writes; a worker refuses a Redis holding another one.
LAYOUT_VERSION = "2"

# Both scripts serve many users per call (one round trip and one command for a whole group
# of users, instead of one per user): KEYS are each user's state hash, seen set and ledger,
# in order; ARGV holds one argument per user. Redis Cluster requires a call's keys to share
# a hash slot, so there the caller groups users by slot.
_KEYS_PER_USER = 3

# ARGV[i]: user i's candidate fingerprints, space separated. Returns, per user, the stored
# fields and a flag per fingerprint telling whether it is already applied.
_LOAD_LUA = """
local out = {}
for i = 1, #ARGV do
  local fields = redis.call('HMGET', KEYS[3 * i - 2], 'ver', 'state', 'trajectory',
                            'latest_event_at', 'ledger_size', 'status_event', 'written_at')
  local fps = {}
  for fp in string.gmatch(ARGV[i], '%S+') do fps[#fps + 1] = fp end
  local flags = {}
  for first = 1, #fps, 4000 do
    local last = math.min(first + 3999, #fps)
    for _, flag in ipairs(redis.call('SMISMEMBER', KEYS[3 * i - 1], unpack(fps, first, last))) do
      flags[#flags + 1] = flag
    end
  end
  out[i] = {fields, flags}
end
return out
"""

# ARGV[i]: JSON [expected version, [field, value, ...], [fingerprint to add, ...],
# rewrite (0/1), [ledger entry, ...], [fingerprint to remove, ...]] of user i. With rewrite
# the ledger is replaced by the entries, otherwise they are appended. Returns per user 1 when
# applied, 0 on a version conflict (that user is left untouched).
_APPLY_LUA = """
local results = {}
for i = 1, #ARGV do
  local write = cjson.decode(ARGV[i])
  local current = redis.call('HGET', KEYS[3 * i - 2], 'ver') or '0'
  if current ~= write[1] then
    results[i] = 0
  else
    redis.call('HSET', KEYS[3 * i - 2], unpack(write[2]))
    local fps = write[3]
    for first = 1, #fps, 4000 do
      redis.call('SADD', KEYS[3 * i - 1], unpack(fps, first, math.min(first + 3999, #fps)))
    end
    local gone = write[6]
    for first = 1, #gone, 4000 do
      redis.call('SREM', KEYS[3 * i - 1], unpack(gone, first, math.min(first + 3999, #gone)))
    end
    if write[4] == 1 then redis.call('DEL', KEYS[3 * i]) end
    local entries = write[5]
    for first = 1, #entries, 4000 do
      redis.call('RPUSH', KEYS[3 * i], unpack(entries, first, math.min(first + 3999, #entries)))
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

# KEYS[1]: a partition's review schedule, KEYS[2]: its policy mark. ARGV[1]: a policy's
# effective instant (Unix seconds), ARGV[2]: the same in microseconds (the mark). Brings
# every user reviewed later than that instant forward to it, once per instant.
_SCHEDULE_POLICY_LUA = """
local mark = tonumber(redis.call('GET', KEYS[2]) or '-1')
if mark >= tonumber(ARGV[2]) then return 0 end
local moved = 0
while true do
  local later = redis.call('ZRANGE', KEYS[1], '(' .. ARGV[1], '+inf', 'BYSCORE', 'LIMIT', 0, 1000)
  if #later == 0 then break end
  for _, user in ipairs(later) do
    redis.call('ZADD', KEYS[1], ARGV[1], user)
  end
  moved = moved + #later
end
redis.call('SET', KEYS[2], ARGV[2])
return moved
"""


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
SCHEDULE_POLICY = LuaScript(_SCHEDULE_POLICY_LUA)

#: What each script does, for the layout document.
SCRIPTS = {
    "LOAD": "per user of a group: the fields a batch needs (ver, state, trajectory, "
    "latest_event_at, ledger_size, status_event, written_at) and which candidate "
    "fingerprints are in the seen set",
    "APPLY": "per user of a group: if ver is the expected one, set the fields, add (and "
    "remove) fingerprints, append to (or replace) the ledger; else report a conflict",
    "CLEAR_IF_EQUAL": "per user: delete the outbox field only if it still holds what was published",
    "SCHEDULE_POLICY": "per partition: bring every review later than a policy's effective "
    "instant forward to it, once per instant (the policy mark)",
}

#: Hash field holding a status-change record not yet confirmed as published (an outbox).
OUTBOX_FIELD = "status_event"
#: Hash fields that are the worker's, not part of the readable summary.
_INTERNAL_FIELDS = frozenset(
    {"state", "trajectory", OUTBOX_FIELD, "latest_event_at", "ledger_size", "written_at"}
)

#: Every field of a user's state hash: name → what it holds. Fields not in
#: ``_INTERNAL_FIELDS`` are the readable summary (`creditline inspect`, the app).
STATE_FIELDS: dict[str, str] = {
    "ver": "write counter: the version a write must find (stale-write check)",
    "state": "the fold of the user's events in the window at the last review "
    "(compact JSON, streams/core/codec.py)",
    "trajectory": "every status change in the window, the last review instant and the next "
    "(compact JSON)",
    "latest_event_at": "occurred_at of the newest event in the ledger (microseconds)",
    "ledger_size": "how many events the ledger holds",
    "written_at": "wall-clock time of the last write (microseconds): the status was "
    "announced as of then",
    OUTBOX_FIELD: "a status change written but not yet confirmed as published (outbox)",
    "at_capacity": "which kept history is full (events, loans), else empty",
    "reviewed_at": "the last review instant (RFC 3339)",
    "next_review": "the next instant the status may change without an event (RFC 3339)",
    "status": "the line status after the last review",
    "status_since": "since when (event time) it holds",
    "status_settled": "0 for a user's provisional first status, else 1",
    "score": "the score at the last review",
    "segment": "the segment at the last review",
    "credit_limit": "the credit limit at the last review",
    "available_limit": "the credit limit less outstanding debt",
    "score_as_of": "occurred_at of the latest event folded into the score",
    "events_applied": "events in the fold",
    "scorer_version": "the scorer's version",
    "policy_version": "the policy version in force at the last review",
}


def standing_summary(assessment: Assessment, state: UserState | None) -> dict[str, str]:
    """The readable fields of a user's standing at the last review (what operators and the
    app read beside the state)."""
    return {
        "score": str(assessment.score),
        "status": assessment.status.value,
        "status_since": assessment.line.since.isoformat(),
        "status_settled": "1" if assessment.line.settled else "0",
        "segment": assessment.segment,
        "credit_limit": f"{assessment.credit_limit:.2f}",
        "available_limit": f"{assessment.available_limit:.2f}",
        "score_as_of": assessment.score_as_of.isoformat(),
        "events_applied": str(state.events_applied if state else 0),
        "scorer_version": assessment.scorer_version,
        "policy_version": assessment.policy_version,
    }


def trajectory_summary(trajectory: Trajectory) -> dict[str, str]:
    """The readable fields of a trajectory stored beside it."""
    line = trajectory.line
    fields = {
        "reviewed_at": trajectory.reviewed_at.isoformat() if trajectory.reviewed_at else "",
        "next_review": trajectory.next_review.isoformat() if trajectory.next_review else "",
    }
    if line is not None:
        fields |= {
            "status": line.status.value,
            "status_since": line.since.isoformat(),
            "status_settled": "1" if line.settled else "0",
        }
    return fields

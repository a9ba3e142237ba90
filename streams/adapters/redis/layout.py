"""The Redis layout of a user's state: every hash field and every Lua script, in one place
(the key names are in :mod:`.keys`). ``docs/redis-layout.md`` is generated from this module
and :mod:`.keys` (``python -m streams.devtools.docs``; a test fails when it drifts).

Invariants the scripts keep, per user and atomically:

* a write applies only if ``ver`` is still the version its batch read (a stale-write check),
  and then moves ``ver`` on by one;
* the fold (``state``), the status history (``trajectory``) and the ledger change
  together, and deduplication reads the ledger itself: an event is applied exactly when its
  entry is in the ledger, so "applied" and "recognised as duplicate" never disagree;
* ``status_event`` (the outbox) is only ever cleared while it still holds what was published.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from streams.core.timeline import Checkpoint, PolicyTimeline, standing
from streams.core.trajectory import Trajectory

#: The key layout this code writes; a worker refuses a Redis holding another one.
LAYOUT_VERSION = "5"

# Both scripts serve many users per call (one round trip and one command for a whole group
# of users, instead of one per user): KEYS are the users' state hashes, in order. Redis
# Cluster requires a call's keys to share a hash slot, so there the caller groups users by
# slot.

#: Bytes of ledger one LOAD call may search, summed over its users (each candidate id is a
#: substring search of its user's ledger). Without a bound the search is candidates × ledger:
#: one user at the event cap (10,000 entries, ~260 kB) sent 19,000 new ids in one batch held
#: Redis for 1.3 s, and every other client of that Redis (deciders, other workers) waited or
#: timed out. Past it a user's candidates are flagged unsearched, and its worker reads the
#: ledger instead (whose entries decide anyway): the cost stays with the flooding user.
SEARCH_BUDGET_BYTES = 16 * 1024 * 1024

# ARGV[i]: user i's candidate event ids, each as it appears in a ledger entry (a length
# byte, then the id), concatenated. Returns, per user, the stored fields and a flag per
# candidate: 1 when its token occurs in the ledger (maybe applied: the caller reads the
# ledger, whose entries decide), 0 when it does not (certainly not applied). Once the
# call's search budget is spent, a user's candidates are all flagged 1 without a search.
_LOAD_LUA = """
local out = {}
local budget = SEARCH_BUDGET_BYTES
for i = 1, #KEYS do
  local fields = redis.call('HMGET', KEYS[i], 'ver', 'state', 'trajectory',
                            'latest_event_at', 'ledger_size', 'status_event', 'written_at')
  local ids = ARGV[i]
  local flags = {}
  if #ids > 0 then
    local ledger = redis.call('HGET', KEYS[i], 'ledger') or ''
    local count, at = 0, 1
    while at <= #ids do
      count = count + 1
      at = at + string.byte(ids, at) + 1
    end
    local cost = count * #ledger
    if cost > budget then
      for n = 1, count do flags[n] = 1 end
    else
      budget = budget - cost
      at = 1
      while at <= #ids do
        local last = at + string.byte(ids, at)
        flags[#flags + 1] = string.find(ledger, string.sub(ids, at, last), 1, true) and 1 or 0
        at = last + 1
      end
    end
  end
  out[i] = {fields, flags}
end
return out
""".replace("SEARCH_BUDGET_BYTES", str(SEARCH_BUDGET_BYTES))

# Per user i, six ARGV from 6 * (i - 1) + 1: the expected version; a JSON array
# [field, value, ...] of the text fields to set; "1" to replace the ledger (events left the
# window) or "0" to append to it; the ledger entries (concatenated); the fold (binary, empty
# for none); the trajectory (binary). Returns per user 1 when applied, 0 on a version
# conflict (that user is left untouched).
_APPLY_LUA = """
local results = {}
for i = 1, #KEYS do
  local key, base = KEYS[i], 6 * (i - 1)
  local current = redis.call('HGET', key, 'ver') or '0'
  if current ~= ARGV[base + 1] then
    results[i] = 0
  else
    redis.call('HSET', key, 'trajectory', ARGV[base + 6], unpack(cjson.decode(ARGV[base + 2])))
    if #ARGV[base + 5] > 0 then redis.call('HSET', key, 'state', ARGV[base + 5]) end
    local entries = ARGV[base + 4]
    if ARGV[base + 3] == '1' then
      redis.call('HSET', key, 'ledger', entries)
    elseif #entries > 0 then
      redis.call('HSET', key, 'ledger', (redis.call('HGET', key, 'ledger') or '') .. entries)
    end
    results[i] = 1
  end
end
return results
"""

# KEYS: users' state hashes. Returns each user's ledger (nil when none): one call per group
# of users rather than a command per user.
_LEDGERS_LUA = """
local ledgers = {}
for i = 1, #KEYS do
  ledgers[i] = redis.call('HGET', KEYS[i], 'ledger')
end
return ledgers
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

#: Most reviews one SCHEDULE_POLICY call moves: one call moving a whole partition held Redis
#: about 3 µs per user (0.9 s for 300,000), every other client waiting.
POLICY_MOVES_PER_CALL = 1000

# KEYS[1]: a partition's review schedule, KEYS[2]: its policy mark. ARGV[1]: a policy's
# effective instant (Unix seconds), ARGV[2]: the same in microseconds (the mark), ARGV[3]:
# most users to move. Brings up to ARGV[3] users reviewed later than that instant forward
# to it and returns how many; the call that finds fewer left sets the mark, and once it is
# set for the instant returns -1 (so each instant is applied once, however many calls).
_SCHEDULE_POLICY_LUA = """
local mark = tonumber(redis.call('GET', KEYS[2]) or '-1')
if mark >= tonumber(ARGV[2]) then return -1 end
local most = tonumber(ARGV[3])
local later = redis.call('ZRANGE', KEYS[1], '(' .. ARGV[1], '+inf', 'BYSCORE', 'LIMIT', 0, most)
if #later > 0 then
  local members = {}
  for n, user in ipairs(later) do
    members[2 * n - 1] = ARGV[1]
    members[2 * n] = user
  end
  redis.call('ZADD', KEYS[1], unpack(members))
end
if #later < most then redis.call('SET', KEYS[2], ARGV[2]) end
return #later
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
LEDGERS = LuaScript(_LEDGERS_LUA)
CLEAR_IF_EQUAL = LuaScript(_CLEAR_IF_EQUAL_LUA)
SCHEDULE_POLICY = LuaScript(_SCHEDULE_POLICY_LUA)

#: What each script does, for the layout document.
SCRIPTS = {
    "LOAD": "per user of a group: the fields a batch needs (ver, state, trajectory, "
    "latest_event_at, ledger_size, status_event, written_at) and which candidate event "
    "ids occur in the ledger (maybe applied: then the ledger is read and decides); past "
    "16 MiB of ledger searched in one call, a user's candidates are all maybe applied, "
    "unsearched (a flooded user's long ledger must not hold Redis for everyone)",
    "LEDGERS": "per user of a group: the ledger (read only for users whose batch needs "
    "their earlier events)",
    "APPLY": "per user of a group: if ver is the expected one, set the fields and append "
    "to (or replace) the ledger; else report a conflict",
    "CLEAR_IF_EQUAL": "per user: delete the outbox field only if it still holds what was published",
    "SCHEDULE_POLICY": "per partition: bring reviews later than a policy's effective "
    "instant forward to it, at most 1,000 per call (called until fewer are left), once per "
    "instant (the policy mark)",
}

#: Hash field holding a status-change record not yet confirmed as published (an outbox).
OUTBOX_FIELD = "status_event"
#: Hash fields that are the worker's, not part of the readable summary.
_INTERNAL_FIELDS = frozenset(
    {
        "state",
        "trajectory",
        "ledger",
        OUTBOX_FIELD,
        "latest_event_at",
        "ledger_size",
        "written_at",
    }
)

#: Every field of a user's state hash: name → what it holds. Fields not in
#: ``_INTERNAL_FIELDS`` are readable as they are (``HGET cl:{u-42}:state status``);
#: :func:`readable_summary` completes them with :data:`DERIVED_FIELDS`.
STATE_FIELDS: dict[str, str] = {
    "ver": "write counter: the version a write must find (stale-write check)",
    "state": "the fold of the user's events in the window at the last review "
    "(binary, streams/core/codec.py)",
    "trajectory": "every status change since the user's first event (9 bytes each, "
    "streams/core/trajectory.py), the last review instant and the next (binary, "
    "streams/core/codec.py)",
    "ledger": "the user's accepted events in the horizon window, binary entries "
    "concatenated in arrival order (streams/core/ledger.py): what deduplication and a late "
    "event's recomputation read",
    "latest_event_at": "occurred_at of the newest event in the ledger (microseconds)",
    "ledger_size": "how many events the ledger holds",
    "written_at": "wall-clock time of the last write (microseconds): the status was "
    "announced as of then",
    OUTBOX_FIELD: "a status change written but not yet confirmed as published (outbox)",
    "at_capacity": "which kept history is full (events, loans), else empty",
    "status": "the line status after the last review",
}

#: The readable summary's fields that are not stored: each follows from ``trajectory`` and
#: ``state`` (and, for the standing, the policy and scorecard in force at the last review),
#: so storing them again would cost ~400 B per user. ``RedisStore.read_summary`` derives
#: them (``creditline inspect USER`` shows the whole standing).
DERIVED_FIELDS: dict[str, str] = {
    "reviewed_at": "the last review instant (RFC 3339)",
    "next_review": "the next instant the status may change without an event (RFC 3339)",
    "status_since": "since when (event time) the status holds",
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


def stored_summary(trajectory: Trajectory) -> dict[str, str]:
    """The readable fields written with a checkpoint."""
    line = trajectory.line
    return {"status": line.status.value} if line is not None else {}


def readable_summary(
    stored: dict[str, str], checkpoint: Checkpoint | None, timelines: PolicyTimeline
) -> dict[str, str]:
    """A user's readable summary: the stored readable fields and the derived ones, the
    standing's under the policy and scorecard in force at the last review."""
    summary = {k: v for k, v in stored.items() if k not in _INTERNAL_FIELDS}
    if checkpoint is None:
        return summary
    trajectory, state = checkpoint.trajectory, checkpoint.state
    at, upcoming = trajectory.reviewed_at, trajectory.next_review
    summary["reviewed_at"] = at.isoformat() if at else ""
    summary["next_review"] = upcoming.isoformat() if upcoming else ""
    line = trajectory.line
    if line is not None:
        summary["status_since"] = line.since.isoformat()
        summary["status_settled"] = "1" if line.settled else "0"
    assessment = standing(checkpoint, timelines)
    if assessment is not None and state is not None:
        summary |= {
            "status": assessment.status.value,
            "score": str(assessment.score),
            "segment": assessment.segment,
            "credit_limit": f"{assessment.credit_limit:.2f}",
            "available_limit": f"{assessment.available_limit:.2f}",
            "score_as_of": assessment.score_as_of.isoformat(),
            "events_applied": str(state.events_applied),
            "scorer_version": assessment.scorer_version,
            "policy_version": assessment.policy_version,
        }
    return summary

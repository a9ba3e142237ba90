"""The Redis key layout: the only module that spells a Redis key.

Every key of one user carries the hash tag ``{user_id}`` so that all of them live in one
Redis Cluster slot and one Lua script may touch them together.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class KeyLayout:
    """Keys under one prefix (``cl`` by default; tests use their own)."""

    prefix: str = "cl"

    def state(self, user_id: str) -> str:
        """Hash: everything kept of a user's events: the fold (``state``), its version
        (``ver``), the status trajectory, the ledger of events and their fingerprints, and
        the latest score fields."""
        return f"{self.prefix}:{{{user_id}}}:state"

    def reviews(self, partition: int) -> str:
        """Sorted set: users of an event partition by the instant of their next review (Unix
        seconds), swept by the worker owning that partition."""
        return f"{self.prefix}:{{reviews-{partition}}}:due"

    def reviews_policy_mark(self, partition: int) -> str:
        """String: the latest policy effective instant already scheduled for review in that
        partition (Unix microseconds)."""
        return f"{self.prefix}:{{reviews-{partition}}}:policy"

    def layout(self) -> str:
        """String: the version of this key layout (a worker refuses an older one)."""
        return f"{self.prefix}:layout"

    def replication_fence(self) -> str:
        """String: written before a ``WAIT`` that must cover earlier writes whose own wait
        failed (``CREDITLINE_REDIS_MIN_REPLICAS``); its value means nothing."""
        return f"{self.prefix}:replication-fence"

    def decision(self, user_id: str, request_id: str) -> str:
        """String: the digest of a request and the decision published for it (idempotent
        redelivery; another body under the same id is a conflict), with a TTL."""
        return f"{self.prefix}:{{{user_id}}}:decision:{request_id}"

    def user_pattern(self) -> str:
        """SCAN pattern matching every per-user key."""
        return f"{self.prefix}:{{*}}:*"

    def state_pattern(self) -> str:
        """SCAN pattern matching every user's state hash."""
        return f"{self.prefix}:{{*}}:state"

    def user_of_state_key(self, key: str) -> str:
        """The user id inside a state key."""
        start = len(self.prefix) + 2
        return key[start : key.index("}", start)]

"""Redis errors as creditline's own (:mod:`streams.errors`): the only module that decides
which redis-py exceptions are an outage (retried) and which need an operator."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis.exceptions

from streams.errors import OperatorActionRequired, Unavailable


class NotReplicated(redis.exceptions.RedisError):
    """Fewer replicas than ``CREDITLINE_REDIS_MIN_REPLICAS`` acknowledged a write in time.

    The write is on the primary but could be lost in a failover, so it does not count as
    stored: like an outage, the batch is retried and stays uncommitted, a decision is not
    published from it (classified in :data:`TRANSIENT`).
    """


#: Redis refusing creditline's credentials or a command: an operator must act, so waiting
#: (as for an outage) would only hide it. Checked before the transient ones, whose
#: ConnectionError includes the first two.
REFUSED = (
    redis.exceptions.AuthenticationError,
    redis.exceptions.AuthorizationError,
    redis.exceptions.NoPermissionError,
)
#: Redis unreachable or unable to write right now: retried, never skipped. (Out of memory
#: and read-only replicas heal when an operator acts; crashing would not help. A write too
#: few replicas acknowledged could be lost in a failover: not stored yet.)
TRANSIENT = (
    NotReplicated,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.TryAgainError,
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.MasterDownError,
    redis.exceptions.ClusterDownError,
    OSError,
)


class StoreUnavailable(Unavailable):
    """Redis cannot be used right now (the redis-py error is the ``__cause__``)."""


class StoreRefused(OperatorActionRequired):
    """Redis refused creditline's credentials or a command (NOPERM)."""


def translate(error: BaseException) -> BaseException:
    """The creditline error for a redis-py (or socket) error; anything else unchanged."""
    if isinstance(error, redis.exceptions.RedisClusterException) and not isinstance(
        error, TRANSIENT
    ):
        # A cluster client that reaches no node says so with this generic error; the cause
        # tells an outage from a bug.
        cause = error.__cause__
        if isinstance(cause, redis.exceptions.ConnectionError | OSError):
            return StoreUnavailable(f"Redis unavailable: {type(cause).__name__}")
        return error
    if isinstance(error, REFUSED):
        return StoreRefused(f"Redis refused: {type(error).__name__}")
    if isinstance(error, TRANSIENT):
        return StoreUnavailable(f"Redis unavailable: {type(error).__name__}")
    return error


@contextmanager
def translated() -> Iterator[None]:
    """Raise redis-py errors inside the block as :class:`StoreUnavailable` or
    :class:`StoreRefused` (the original kept as ``__cause__``)."""
    try:
        yield
    except (redis.exceptions.RedisError, redis.exceptions.RedisClusterException, OSError) as exc:
        mapped = translate(exc)
        if mapped is exc:
            raise
        raise mapped from exc

"""The errors creditline raises on purpose: one root, and the few kinds callers act on.

* :class:`Unavailable` — a dependency (Redis, Kafka) cannot be used right now: the worker
  retries and never skips; a command exits with code 3.
* :class:`OperatorActionRequired` — refused credentials or permissions, data of another key
  layout, inconsistent topics: waiting would only hide it; a worker stops, a command exits 4.
* :class:`InvalidInput` — what a person typed cannot be used: exit 2, with the field named.
* :class:`ShuttingDown` — the process is stopping with work unapplied: it is left for
  redelivery, never acknowledged.
* :class:`BatchInterrupted` — a rebalance takes a batch's partitions while it is folded: the
  rest of the batch is left to be read again, never acknowledged; the worker goes on.

Adapters translate their libraries' exceptions into these (the library's own exception is
kept as ``__cause__``), so the service layer never imports redis-py or aiokafka errors.
"""

from __future__ import annotations


class CreditlineError(Exception):
    """Root of every error creditline raises on purpose."""

    exit_code = 1


class Unavailable(CreditlineError):
    """A dependency cannot be used right now (unreachable, loading, failing over): retry."""

    exit_code = 3


class OperatorActionRequired(CreditlineError):
    """Something only an operator can fix (credentials, ACLs, data layout, topics)."""

    exit_code = 4


class InvalidInput(CreditlineError):
    """Input given to a command that cannot be used; the message names what and why."""

    exit_code = 2


class ShuttingDown(CreditlineError):
    """The process is stopping while work is unapplied: leave it for redelivery."""


class BatchInterrupted(CreditlineError):
    """A rebalance is taking the partitions of a batch being folded: the batch ends after
    the part in hand, unacknowledged, and is read again from its first record."""


class FoldStopped(CreditlineError):
    """The fold process of a role-``all`` worker stopped while the worker ran: the worker
    stops too, so that whatever restarts it restarts both."""

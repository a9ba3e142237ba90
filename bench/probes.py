"""When the freshness probes are looked for in Redis: often while they are young, seldom
once they are old. Pure.

A probe is an event for a new user; it is fresh once the user's state exists. Looking for
every pending probe every few milliseconds measured the fold at the cost of what was being
measured: in an overload run, 470 probes pending for up to 47 s meant ~94,000 ``EXISTS``
a second — Redis and the benchmark's own process busy on the two cores the worker shares,
and the decisions measured late for it. Each probe is looked for again after a delay
proportional to its age instead, so a delay is measured to within
:data:`RELATIVE_RESOLUTION` of itself (and never coarser than :data:`POLL_SECONDS` below
that): 50 looks in a probe's first 0.25 s, then ~116 more each time its age multiplies by
e — ~3,000 a second in all for that overload run instead of ~94,000.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: The shortest wait between two looks for one probe (the resolution of young delays).
POLL_SECONDS = 0.005
#: A probe pending for ``age`` seconds is looked for again ``age * RELATIVE_RESOLUTION``
#: seconds later: its delay is then known to within that fraction of itself.
RELATIVE_RESOLUTION = 0.02


@dataclass
class ProbeSchedule:
    """Pending probes: when each was sent and when to look for it next."""

    poll_seconds: float = POLL_SECONDS
    relative_resolution: float = RELATIVE_RESOLUTION
    _sent: dict[str, float] = field(default_factory=dict)
    _next: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self._sent)

    def sent(self, probe: str, now: float) -> None:
        """``probe`` was sent at ``now`` (looked for from the next poll on)."""
        self._sent[probe] = now
        self._next[probe] = now

    def due(self, now: float) -> list[str]:
        """The pending probes to look for at ``now``, oldest first."""
        return [probe for probe, at in self._next.items() if at <= now]

    def looked(self, found: dict[str, bool], now: float) -> list[tuple[float, float]]:
        """What a look at ``now`` found: the probes found are done, the others wait longer.
        Returns (sent, delay) of each probe found."""
        done = []
        for probe, exists in found.items():
            sent = self._sent[probe]
            if exists:
                del self._sent[probe], self._next[probe]
                done.append((sent, now - sent))
            else:
                wait = max(self.poll_seconds, (now - sent) * self.relative_resolution)
                self._next[probe] = now + wait
        return done

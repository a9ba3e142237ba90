"""Hypothesis profiles, chosen by ``HYPOTHESIS_PROFILE``:

* ``creditline`` (the default): full depth. Property tests check properties, not speed: no
  per-example deadline (200 ms by default) and no health check on slow data generation,
  either of which fails on a slower or busier machine.
* ``compat``: the same with a fifth of the examples, for ``scripts/check-pythons.sh``, whose
  purpose is the newer interpreters, not the properties' depth (the main interpreter runs
  them at full depth).

A test that asks for more examples than the default writes ``max_examples=examples(400)``,
so that its depth follows the profile too.
"""

from __future__ import annotations

import os

import hypothesis

hypothesis.settings.register_profile(
    "creditline",
    deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.too_slow],
)
hypothesis.settings.register_profile(
    "compat", parent=hypothesis.settings.get_profile("creditline"), max_examples=20
)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "creditline")
hypothesis.settings.load_profile(PROFILE)

#: Hypothesis' own default number of examples, which the full-depth profile keeps.
FULL_DEPTH = 100


def examples(full_depth: int) -> int:
    """``full_depth`` examples in the full-depth profile, as many fewer in the others."""
    return max(1, full_depth * hypothesis.settings.get_profile(PROFILE).max_examples // FULL_DEPTH)

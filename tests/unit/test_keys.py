"""The key layout keeps every key of one user in one Redis Cluster hash slot."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

from streams.adapters.redis.keys import KeyLayout

USER_IDS = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-",
    min_size=1,
    max_size=64,
)


@given(user=USER_IDS, request=st.from_regex(r"[A-Za-z0-9._:-]{1,64}", fullmatch=True))
def test_every_key_of_a_user_is_in_the_slot_of_the_user_id(user: str, request: str) -> None:
    layout = KeyLayout("t1.x-y")
    keys = [layout.state(user), layout.decision(user, request)]
    # Redis hashes only what is inside the first {...}: the user id itself.
    assert {key_slot(k.encode()) for k in keys} == {key_slot(user.encode())}


def test_the_state_pattern_finds_state_keys_and_gives_back_the_user() -> None:
    layout = KeyLayout("cl")
    key = layout.state("u-42")
    assert key == "cl:{u-42}:state"
    assert layout.user_of_state_key(key) == "u-42"
    assert layout.state_pattern() == "cl:{*}:state"

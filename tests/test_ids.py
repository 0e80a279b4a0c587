"""Trace ids a tenant sees say nothing about other tenants' writes; they are ULIDs, spelled exactly."""

from __future__ import annotations

import random

from agnt_traces import ids
from agnt_traces.ids import new_id

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def parts(ulid: str) -> tuple[int, int]:
    value = 0
    for c in ulid:
        value = value * 32 + _CROCKFORD.index(c)
    return value >> 80, value & ((1 << 80) - 1)


def test_a_tenants_ids_follow_its_own_sequence_whatever_others_make() -> None:
    ms = 1_700_000_000_000
    first = parts(new_id(ms, scope="attacker"))
    for _ in range(2000):
        new_id(ms, scope="victim")
    second = parts(new_id(ms, scope="attacker"))
    assert first[0] == second[0] == ms
    # One step of the attacker's own sequence (at most 2**40), never 2001 steps of a shared one.
    assert 0 < second[1] - first[1] <= 2**40


def test_ids_of_one_scope_sort_in_creation_order_within_a_millisecond() -> None:
    ms = 1_700_000_000_001
    ids = [new_id(ms, scope="t") for _ in range(500)]
    assert ids == sorted(ids) and len(set(ids)) == 500


def test_ids_spell_time_and_random_part_in_crockford_base32() -> None:
    """26 characters: 10 for the 48-bit millisecond, 16 for the 80-bit random part, 5 bits each."""
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

    def spelled(value: int, length: int) -> str:
        return "".join(alphabet[(value >> (5 * i)) & 31] for i in reversed(range(length)))

    rng = random.Random(3)
    for ms, rand in [(0, 0), (2**48 - 1, 2**80 - 1), *((rng.getrandbits(48), rng.getrandbits(80)) for _ in range(500))]:
        assert ids._ulid(ms, rand) == spelled(ms, 10) + spelled(rand, 16)
    made = new_id(1_700_000_000_000, scope="a scope of its own")  # no later id of this scope yet
    assert len(made) == 26 and set(made) <= set(alphabet) and made[:10] == spelled(1_700_000_000_000, 10)


def test_times_are_written_exactly_to_the_millisecond_up_to_year_9999() -> None:
    from agnt_traces.ids import ms_to_rfc3339, parse_time

    rng = random.Random(5)
    last = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
    for ms in [0, 1, last, 64_975_809_334_420, *(rng.randrange(0, last + 1) for _ in range(2000))]:
        assert parse_time(ms_to_rfc3339(ms), "t") == ms, ms
    assert ms_to_rfc3339(253_402_300_799_999) == "9999-12-31T23:59:59.999Z"

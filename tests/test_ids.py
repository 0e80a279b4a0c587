"""Trace ids a tenant sees say nothing about other tenants' writes."""

from __future__ import annotations

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

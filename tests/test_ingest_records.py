"""A manifest's key (its digest and canonical JSON) is the same however its keys are ordered, whether or
not it was seen before; non-finite numbers are refused every time; the memory of recent keys is bounded."""

from __future__ import annotations

import json

import pytest

from agnt_traces import ingest_records
from agnt_traces.ingest_records import manifest_key_of


def test_the_key_does_not_depend_on_key_order_or_on_having_been_seen() -> None:
    a = {"system": "s", "model": {"provider": "openai", "name": "m", "params": {"temperature": 0.2, "top_p": 1}}}
    b = {"model": {"params": {"top_p": 1, "temperature": 0.2}, "name": "m", "provider": "openai"}, "system": "s"}
    first, again, reordered = manifest_key_of(a), manifest_key_of(a), manifest_key_of(b)
    assert first == again == reordered
    assert first.text == json.dumps(a, sort_keys=True, separators=(",", ":"))
    assert manifest_key_of({**a, "system": "t"}).digest != first.digest
    assert manifest_key_of({"x": 1}).digest != manifest_key_of({"x": 1.0}).digest


def test_non_finite_numbers_are_refused_even_next_to_a_remembered_null() -> None:
    manifest_key_of({"x": None})
    for value in (float("nan"), float("inf"), float("-inf")):
        for _ in range(2):
            with pytest.raises(ValueError):
                manifest_key_of({"x": value})


def test_recent_keys_stay_within_their_byte_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest_records, "_RECENT", {})
    monkeypatch.setattr(ingest_records, "_RECENT_BYTES", 0)
    monkeypatch.setattr(ingest_records, "_RECENT_MAX_BYTES", 10_000)
    for i in range(200):
        manifest_key_of({"system": f"{i:04d}" + "x" * 200})
        assert ingest_records._RECENT_BYTES <= 10_000
    assert 0 < len(ingest_records._RECENT) < 200
    huge = {"system": "y" * (ingest_records._RECENT_MAX_ONE + 1)}
    assert manifest_key_of(huge).text == json.dumps(huge, separators=(",", ":"))
    assert all(len(seen) <= ingest_records._RECENT_MAX_ONE for seen in ingest_records._RECENT)

"""The one typed ingest path: a trace posted as JSON text is validated once, straight into the typed trace,
and comes out exactly as the checked path (parse, check the JSON limits, validate) made it: the same
stored trace, the same content digest (so a trace re-posted after an upgrade is still a no-op), the same
manifest key, and for bad input the same error naming the same field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agnt_traces.app import open_app
from agnt_traces.config import Settings
from agnt_traces.errors import InvalidArgument
from agnt_traces.ingest_records import TraceRecord, manifest_key
from agnt_traces.jsonlimits import loads_checked
from agnt_traces.services.traces import TraceService
from factories import trace_payload

SERVICE = TraceService(None)  # type: ignore[arg-type]  # validation only: nothing is stored


def both_ways(raw: bytes) -> tuple[TraceRecord, TraceRecord]:
    return SERVICE.prepare_json(raw), SERVICE.prepare(loads_checked(raw))


def rich_payload(**overrides: Any) -> dict[str, Any]:
    return trace_payload(
        id="digest-1",
        createdAt="2026-11-30T09:00:00Z",
        variables={"n": 1.5, "nested": {"list": [1, "two", None, True]}, "text": "héllo"},
        **overrides,
    )


CASES = [
    rich_payload(),
    trace_payload(id="plain", createdAt="2026-01-01T00:00:00Z"),
    trace_payload(id="no-cost", createdAt="2026-01-01T00:00:00Z", cost=None, duration=None),
    trace_payload(
        id="tools",
        createdAt="2026-01-01T00:00:00Z",
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function"}]},
            {"role": "tool", "content": "42", "tool_call_id": "c1"},
        ],
        status="error",
        error=None,
        metadata={"k": [1, 2.5e-3, {"deep": "x"}]},
    ),
]


@pytest.mark.parametrize("payload", CASES, ids=lambda p: p["id"])
def test_the_json_path_makes_the_same_record_as_the_checked_path(payload: dict[str, Any]) -> None:
    fast, checked = both_ways(json.dumps(payload).encode())
    assert fast.digest == checked.digest
    assert fast.manifest == checked.manifest == manifest_key(checked.trace.manifest)
    assert fast.created_ms == checked.created_ms
    assert fast.client_id == checked.client_id
    assert fast.trace.to_json() == checked.trace.to_json()


def test_digests_are_those_stored_by_earlier_versions() -> None:
    """Stored traces carry these digests: a re-post after an upgrade must compare equal (a no-op, not a
    conflict). Values computed by the code before the typed path."""
    fast, checked = both_ways(json.dumps(rich_payload()).encode())
    assert fast.digest.hex() == checked.digest.hex() == "11bd518d77718fae89a5adf554a9565d"
    assert fast.manifest is not None and fast.manifest.digest.hex() == "7ed65ca7ad2da3ba3bd60997e26e9141"
    unreported = json.dumps(trace_payload(id="digest-2", duration=None, cost=None)).encode()
    assert SERVICE.prepare_json(unreported).digest.hex() == "4424951318ba1c814fb6b2b8c9ee71e0"


def test_an_estimated_cost_is_not_part_of_the_digest_on_either_path() -> None:
    raw = json.dumps(trace_payload(id="est", cost=None, inputTokens=1000, outputTokens=10)).encode()
    fast, checked = both_ways(raw)
    assert fast.trace.cost is not None and fast.trace.metadata.get("costEstimated") is True
    assert fast.digest == checked.digest


def _deep(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = {"d": value}
    return value


BAD = {
    "nan": b'{"variables": {"x": NaN}}',
    "infinity": b'{"metadata": {"x": -Infinity}}',
    "too large for a double": b'{"variables": {"x": 1e400}}',
    "too large, with a plus": b'{"metadata": {"x": 1E+400}}',
    "too large, a small mantissa": b'{"variables": {"x": 0.1e999}}',
    "too large, no exponent": b'{"variables": {"x": 1' + b"0" * 400 + b".5}}",
    "lone surrogate": b'{"variables": {"x": "\\ud800"}}',
    "lone surrogate key": b'{"metadata": {"\\udc00": 1}}',
    "too deep": json.dumps({"variables": _deep(70)}).encode(),
    "not json": b'{"output": ',
    "not utf-8": b'{"output": "\xff"}',
    "unknown field": json.dumps({**trace_payload(), "colour": "red"}).encode(),
    "bad value": json.dumps(trace_payload(inputTokens=-1)).encode(),
    "success with error": json.dumps(trace_payload(error={"type": "x", "message": "y"})).encode(),
    "bad createdAt": json.dumps(trace_payload(createdAt="yesterday-ish")).encode(),
}


@pytest.mark.parametrize("raw", BAD.values(), ids=BAD.keys())
def test_bad_input_gets_the_checked_paths_error(raw: bytes) -> None:
    with pytest.raises(InvalidArgument) as fast:
        SERVICE.prepare_json(raw)
    with pytest.raises(InvalidArgument) as checked:
        SERVICE.prepare(loads_checked(raw))
    assert fast.value.to_dict() == checked.value.to_dict()


def test_a_body_that_is_not_an_object_is_refused_as_a_request_body() -> None:
    with pytest.raises(InvalidArgument) as exc:
        SERVICE.prepare_json(b"[1, 2]")
    assert exc.value.message == "request body must be a JSON object, not list"


def test_text_that_only_looks_non_finite_is_stored() -> None:
    """Without a client id the fast path skips the canonical digest unless a number could be non-finite;
    strings that say so, big exponents of small numbers and long integers still go through."""
    for value in ("NaN", "-Infinity", "e400", "9" * 400):
        raw = json.dumps(trace_payload(output=value, variables={"x": value})).encode()
        assert SERVICE.prepare_json(raw).trace.output == value
    for number in (b"1e-400", b"1" + b"0" * 400, b"12.5e2"):
        raw = b'{"output": "x", "variables": {"x": ' + number + b"}}"
        assert SERVICE.prepare_json(raw).trace.variables["x"] == json.loads(number)


def test_non_finite_numbers_never_reach_a_record() -> None:
    for raw in (BAD["nan"], BAD["too large for a double"], BAD["too large, no exponent"]):
        with pytest.raises(InvalidArgument, match="finite"):
            SERVICE.prepare_json(raw)


# -- a batch body, validated at once ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_valid_batch_is_stored_as_the_checked_path_stores_it(tmp_path: Path) -> None:
    traces = [*CASES, trace_payload(id=None, output="server id", createdAt="2026-02-02T00:00:00Z")]
    raw = json.dumps({"traces": traces}).encode()
    async with (
        open_app(Settings(db_path=str(tmp_path / "fast.db"))) as fast,
        open_app(Settings(db_path=str(tmp_path / "checked.db"))) as checked,
    ):
        got = await fast.traces.ingest_each_json("default", raw)
        want = await checked.traces.ingest_each("default", loads_checked(raw)["traces"])
        assert got is not None
        assert [(r.id, r.created) for r in got[:-1]] == [(r.id, r.created) for r in want[:-1]]  # type: ignore[union-attr]
        for a, b in zip(got, want, strict=True):
            stored_a = (await fast.traces.get("default", a.id)).to_json()  # type: ignore[union-attr]
            stored_b = (await checked.traces.get("default", b.id)).to_json()  # type: ignore[union-attr]
            stored_a.pop("id")
            stored_b.pop("id")
            assert stored_a == stored_b
        again = await fast.traces.ingest_each_json("default", raw)  # client ids: a no-op, as on the checked path
        assert again is not None and [r.created for r in again[:-1]] == [False] * (len(traces) - 1)  # type: ignore[union-attr]


@pytest.mark.anyio
@pytest.mark.parametrize(
    "bad", [*BAD.values(), json.dumps({"variables": _deep(62)}).encode()], ids=[*BAD, "too deep in a batch"]
)
async def test_a_batch_with_anything_to_refuse_takes_the_checked_path(tmp_path: Path, bad: bytes) -> None:
    """None (nothing stored): the caller takes the checked path, whose answers name each problem."""
    raw = b'{"traces": [' + json.dumps(trace_payload(id="fine")).encode() + b", " + bad + b"]}"
    async with open_app(Settings(db_path=str(tmp_path / "t.db"))) as app:
        assert await app.traces.ingest_each_json("default", raw) is None
        assert await app.store.count_traces("default") == 0


@pytest.mark.anyio
async def test_a_batch_at_the_depth_limit_is_taken_and_one_level_deeper_is_not(tmp_path: Path) -> None:
    """The body is level 1, its list 2, each trace 3: a value nested to level 64 in all passes."""
    async with open_app(Settings(db_path=str(tmp_path / "t.db"))) as app:
        at_limit = json.dumps({"traces": [trace_payload(variables=_deep(61))]}).encode()
        loads_checked(at_limit)  # within the limit for the checked path too
        assert await app.traces.ingest_each_json("default", at_limit) is not None
        deeper = json.dumps({"traces": [trace_payload(variables=_deep(62))]}).encode()
        with pytest.raises(InvalidArgument):
            loads_checked(deeper)
        assert await app.traces.ingest_each_json("default", deeper) is None
        too_many = json.dumps({"traces": [trace_payload()] * 1001}).encode()
        assert await app.traces.ingest_each_json("default", too_many) is None
        assert await app.store.count_traces("default") == 1

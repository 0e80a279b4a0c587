"""The one typed ingest path: a trace posted as JSON text is validated once, straight into the typed trace,
and comes out exactly as the checked path (parse, check the JSON limits, validate) made it: the same
stored trace, the same content digest (so a trace re-posted after an upgrade is still a no-op), the same
manifest key, and for bad input the same error naming the same field."""

from __future__ import annotations

import json
from typing import Any

import pytest

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
    "too large, long and a short exponent": b'{"metadata": {"x": 1' + b"0" * 298 + b"e11}}",
    "too large, in the manifest": b'{"manifest": {"model": {"temperature": 1' + b"0" * 250 + b"e99}}}",
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
    for number in (b"1e-400", b"1" + b"0" * 400, b"12.5e2", b"9" * 19 + b".5e99", b"-" + b"9" * 19 + b"E+99"):
        raw = b'{"output": "x", "variables": {"x": ' + number + b"}}"
        assert SERVICE.prepare_json(raw).trace.variables["x"] == json.loads(number)


def test_non_finite_numbers_never_reach_a_record() -> None:
    for raw in (
        BAD["nan"],
        BAD["too large for a double"],
        BAD["too large, no exponent"],
        BAD["too large, long and a short exponent"],
        BAD["too large, in the manifest"],
    ):
        with pytest.raises(InvalidArgument, match="finite"):
            SERVICE.prepare_json(raw)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("trace_id", [None, "with-id"])
def test_a_non_finite_python_float_is_refused_naming_its_field(value: float, trace_id: str | None) -> None:
    """The Python API hands over dicts that were never JSON: a NaN there is refused, not stored as null."""
    for payload, field in (
        (trace_payload(id=trace_id, metadata={"x": value}), "metadata.x"),
        (trace_payload(id=trace_id, variables={"v": [1, value]}), "variables.v[1]"),
    ):
        with pytest.raises(InvalidArgument) as exc:
            SERVICE.prepare(payload)
        assert exc.value.details["field"] == field


# -- batches: {"traces": [...]} validated straight from the JSON when every trace is valid --------------------


def _batch(*payloads: dict[str, Any]) -> bytes:
    return json.dumps({"traces": list(payloads)}).encode()


def test_a_valid_batch_makes_the_records_of_the_checked_path() -> None:
    raw = _batch(*CASES, trace_payload(id="unicode", createdAt="2026-01-01T00:00:00Z", output="日本 \U0001f600"))
    fast = SERVICE.prepare_batch_json(raw)
    assert fast is not None, "a batch of valid traces took the slow path"
    checked = [SERVICE.prepare(t) for t in loads_checked(raw)["traces"]]
    assert len(fast) == len(checked) == len(CASES) + 1
    for one, other in zip(fast, checked, strict=True):  # every case has a client id: canonical digests
        assert (one.digest, one.manifest, one.created_ms, one.client_id) == (
            other.digest,
            other.manifest,
            other.created_ms,
            other.client_id,
        )
        assert one.trace.to_json() == other.trace.to_json()


def test_traces_without_ids_get_new_ids_and_digests_of_their_own() -> None:
    payloads = [trace_payload(createdAt="2026-01-01T00:00:00Z", output="the same answer") for _ in range(3)]
    fast = SERVICE.prepare_batch_json(_batch(*payloads))
    again = SERVICE.prepare_batch_json(_batch(*payloads))
    assert fast is not None and again is not None
    checked = [SERVICE.prepare(p) for p in payloads]
    assert len({r.trace.id for r in fast + again + checked}) == 9
    assert len({r.digest for r in fast}) == 3 and all(len(r.digest) == 16 for r in fast)
    assert [r.digest for r in fast] == [r.digest for r in again], "the digest names what was posted"
    assert [r.trace.to_json() | {"id": ""} for r in fast] == [r.trace.to_json() | {"id": ""} for r in checked]


@pytest.mark.parametrize("raw", BAD.values(), ids=BAD.keys())
def test_a_batch_holding_bad_input_is_left_to_the_checked_path(raw: bytes) -> None:
    """Nothing the checked path would refuse (or answer differently) is accepted by the batch's fast path."""
    good = json.dumps(trace_payload()).encode()
    assert SERVICE.prepare_batch_json(b'{"traces": [' + good + b", " + raw + b"]}") is None


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"[]",
        b'{"traces": {}}',
        b'{"traces": [], "extra": 1}',
        b'{"traces": [1]}',
        json.dumps({"traces": [trace_payload()] * 1001}).encode(),
        b'\xef\xbb\xbf{"traces": []}',
    ],
    ids=["empty", "a list", "not a list", "another key", "not an object", "too many", "a BOM"],
)
def test_a_body_that_is_not_a_plain_batch_is_left_to_the_checked_path(raw: bytes) -> None:
    assert SERVICE.prepare_batch_json(raw) is None


def test_depth_is_counted_as_the_checked_path_counts_it() -> None:
    """The body is level 1, its list level 2, a trace level 3: a trace may nest 62 levels, not 63."""
    at_limit = trace_payload(variables=_deep(61))  # the trace, then 61 dicts (variables the first): 62 levels
    loads_checked(_batch(at_limit))  # within the limit for the checked path
    assert SERVICE.prepare_batch_json(_batch(at_limit)) is not None
    past = trace_payload(variables=_deep(62))
    with pytest.raises(InvalidArgument):
        loads_checked(_batch(past))
    assert SERVICE.prepare_batch_json(_batch(past)) is None

"""models.Trace.assemble: the fast way the ingest path builds a trace from validated parts."""

from __future__ import annotations

from typing import Any

import pytest

from agnt_traces.models import ErrorInfo, Manifest, ModelInfo, Trace


def _fields(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = dict(
        id="01J0000000000000000000000A",
        created_at="2026-11-30T12:00:00.000Z",
        prompt_name="support",
        prompt_version=3,
        etag=None,
        manifest=Manifest(system="be brief"),
        variables={"who": "Ada"},
        messages=[{"role": "user", "content": "hi"}],
        output="hello",
        tool_calls=[],
        input_tokens=3,
        output_tokens=1,
        total_tokens=4,
        cost=0.001,
        duration=0.2,
        model=ModelInfo(provider="openai", name="gpt-4o-mini"),
        status="error",
        error=ErrorInfo(type="RateLimitError", message="slow down"),
        tags=["a"],
        metadata={"k": "v"},
        source="api",
        session_id=None,
        parent_trace_id=None,
    )
    fields.update(overrides)
    return fields


def test_an_assembled_trace_is_the_constructed_one() -> None:
    assembled, constructed = Trace.assemble(**_fields()), Trace.model_construct(**_fields())
    assert assembled == constructed
    assert assembled.model_fields_set == constructed.model_fields_set == set(Trace.model_fields)
    assert assembled.to_json() == constructed.to_json()


def test_assembled_traces_share_nothing() -> None:
    first = Trace.assemble(**_fields(tags=["a"], metadata={"k": "v"}))
    second = Trace.assemble(**_fields(tags=["b"], metadata={}))
    first.tags.append("changed")
    first.metadata["added"] = True
    assert second.tags == ["b"] and second.metadata == {}
    third = Trace.assemble(**_fields())
    assert third.tags == ["a"] and third.metadata == {"k": "v"}


@pytest.mark.parametrize("change", [{"drop": "output"}, {"add": "outputs"}])
def test_every_field_must_be_given_by_name(change: dict[str, str]) -> None:
    fields = _fields()
    if "drop" in change:
        del fields[change["drop"]]
        missing = change["drop"]
    else:
        fields[change["add"]] = "x"
        missing = change["add"]
    with pytest.raises(TypeError, match=missing):
        Trace.assemble(**fields)

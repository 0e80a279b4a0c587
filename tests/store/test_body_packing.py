"""Trace bodies are packed with a preset dictionary; bodies packed the older ways still read back."""

from __future__ import annotations

import json
import math
import zlib

import pytest
from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_json

from agnt_traces.app import App
from agnt_traces.ids import ms_to_rfc3339, new_id, now_ms
from agnt_traces.models import ErrorInfo, ModelInfo, Trace
from agnt_traces.store import codec


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"output": "ok"},
        {
            "variables": {"customer": "Ada", "tier": "premium"},
            "messages": [{"role": "system", "content": "You are a helpful agent."}, {"role": "user", "content": "Hi"}],
            "output": "Your refund was issued yesterday and should be with you in a few days.",
        },
        {"messages": [{"role": "user", "content": 'é 日本 \u2028 \\ "'}], "error": {"type": "E", "message": "x" * 90}},
    ],
)
def test_a_body_reads_back_as_it_was_packed(body: dict[str, object]) -> None:
    assert codec._decompress(codec._compress_raw(to_json(body))) == body


def test_older_forms_still_read() -> None:
    body = {"output": "the answer " * 30, "messages": [{"role": "user", "content": "why?"}]}
    raw = json.dumps(body, separators=(",", ":")).encode()
    assert codec._decompress(b"z" + zlib.compress(raw, 6)) == body
    assert codec._decompress(b"j" + raw) == body


def test_the_dictionary_makes_a_typical_body_smaller() -> None:
    body = {
        "variables": {"name": "Ada"},
        "messages": [{"role": "user", "content": "Can you tell me when my order will be here? It has been a week."}],
        "output": "I can see your order is on its way: it should come to you in two days. Thank you for your time.",
    }
    raw = json.dumps(body, separators=(",", ":")).encode()
    packed = codec._compress_raw(to_json(body))
    assert packed[:1] == b"d"
    assert len(packed) < 0.85 * (1 + len(zlib.compress(raw, 6)))


BODY_FIELDS = ("variables", "messages", "output", "tool_calls", "error", "metadata")


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"output": ""},  # an empty answer is an answer: kept
        {
            "variables": {"who": "Zoë 日本", "n": 3, "ratio": 0.1, "nested": {"deep": [1, None, True]}},
            "messages": [{"role": "user", "content": 'é \u2028 \\ "'}],
            "output": "fine",
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
            "metadata": {"k": "v", "big": 10**30, "tiny": 1e-300},
            "error": ErrorInfo(type="RateLimitError", message="slow down"),
            "model": ModelInfo(provider="openai", name="gpt-4o-mini", metadata={"finishReason": "stop"}),
            "etag": "not-the-manifests",
        },
    ],
)
def test_pack_body_keeps_what_the_model_dump_of_the_trace_says(fields: dict[str, object]) -> None:
    trace = Trace(id="01J0000000000000000000000A", created_at="2026-11-30T12:00:00.000Z", **fields)
    dumped = trace.model_dump(mode="json")
    expected = {key: dumped[key] for key in BODY_FIELDS if dumped[key] not in (None, [], {})}
    if trace.model.metadata:
        expected["model_metadata"] = dumped["model"]["metadata"]
    if trace.etag is not None:
        expected["etag"] = trace.etag
    assert codec._decompress(codec.pack_body(trace)) == expected
    assert codec._decompress(codec.pack_body(trace, created_ms=5)) == {"created_ms": 5, **expected}


class _Aliased(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    my_field: int = Field(1, alias="myField")


@pytest.mark.anyio
async def test_a_model_in_free_form_fields_reads_back_by_field_name(app: App) -> None:
    """A Python API user may put a pydantic model in metadata or variables: stored as model_dump gives it."""
    r = await app.traces.ingest("t", {"output": "o", "metadata": {"k": _Aliased()}, "variables": {"v": [_Aliased()]}})
    t = await app.traces.get("t", r.id)
    assert t.metadata == {"k": {"my_field": 1}} and t.variables == {"v": [{"my_field": 1}]}


@pytest.mark.anyio
async def test_a_non_finite_number_in_a_recorded_trace_reads_back_as_null(app: App) -> None:
    ms = now_ms()
    trace = Trace(
        id=new_id(ms, scope="t"),
        created_at=ms_to_rfc3339(ms),
        output="o",
        metadata={"x": math.nan, "y": math.inf},
        variables={"v": -math.inf},
    )
    await app.traces.record("t", trace)
    t = await app.traces.get("t", trace.id)
    assert t.metadata == {"x": None, "y": None} and t.variables == {"v": None}

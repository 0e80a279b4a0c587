"""Attacks on POST /v1/traces: every one refused (or contained) with the OTLP answer, never a 500."""

from __future__ import annotations

import dataclasses
import gzip
import json
import resource
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import Tracer

from agnt_traces.config import Settings
from http_helpers import InProcess, check_error_body, db_snapshot, in_process
from otlp_helpers import PROTOBUF, json_body, protobuf_body, sdk_spans

pytestmark = pytest.mark.anyio

JSON = {"content-type": "application/json"}


def rpc_status(body: bytes) -> tuple[int, str]:
    """google.rpc.Status (code, message), decoded with the googleapis classes the exporters use."""
    from google.rpc.status_pb2 import Status

    status = Status.FromString(body)
    return status.code, status.message


@pytest.fixture
async def env(settings: Settings) -> Any:
    limited = dataclasses.replace(
        settings, otlp_max_body_bytes=2_000_000, otlp_max_spans=1000, otlp_max_attribute_chars=10_000
    )
    async with in_process(limited, "acme") as e:
        yield e


async def post(env: InProcess, body: bytes, headers: dict[str, str], auth: bool = True) -> Any:
    return await env.client.post("/v1/traces", content=body, headers={**(env.auth("acme") if auth else {}), **headers})


def one_llm_span(tracer: Tracer, content: str = "hi") -> None:
    with tracer.start_as_current_span("chat") as span:
        span.set_attributes(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.input.messages": json.dumps(
                    [{"role": "user", "parts": [{"type": "text", "content": content}]}]
                ),
                "gen_ai.output.messages": json.dumps(
                    [{"role": "assistant", "parts": [{"type": "text", "content": "ok"}]}]
                ),
            }
        )


async def test_gzip_bomb_is_413_without_inflating_it(env: InProcess, settings: Settings) -> None:
    bomb = gzip.compress(b"\0" * 200_000_000, compresslevel=9)  # ~200 KB on the wire, 200 MB inflated
    assert len(bomb) < 1_000_000
    before = db_snapshot(settings.db_path)
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    r = await post(env, bomb, {**PROTOBUF, "content-encoding": "gzip"})
    assert r.status_code == 413
    code, message = rpc_status(r.content)
    assert code == 8 and "2000000 bytes (decompressed)" in message
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
    assert grown_kb < 50_000  # never near the 200 MB the bomb holds
    assert db_snapshot(settings.db_path) == before


async def test_too_many_spans_is_413_and_names_the_exporter_setting(env: InProcess) -> None:
    spans = sdk_spans(lambda t: [t.start_span(f"s{i}").end() for i in range(1001)])  # type: ignore[func-returns-value]
    r = await post(env, protobuf_body(spans), PROTOBUF)
    assert r.status_code == 413 and "OTEL_BSP_MAX_EXPORT_BATCH_SIZE" in rpc_status(r.content)[1]
    r = await post(env, json_body(spans), JSON)
    assert r.status_code == 413 and check_error_body(r.json())["code"] == "payload_too_large"


async def test_a_hundred_thousand_tiny_spans_are_refused_cheaply(settings: Settings) -> None:
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for i in range(100_000):
        span = scope.spans.add()
        span.trace_id = b"\1" * 16
        span.span_id = i.to_bytes(8, "big")
    async with in_process(dataclasses.replace(settings, otlp_max_body_bytes=20_000_000), "acme") as e:
        r = await post(e, request.SerializeToString(), PROTOBUF)
    assert r.status_code == 413 and "100000 spans" in rpc_status(r.content)[1]


async def test_body_over_the_limit_is_413_by_header_and_by_stream(env: InProcess) -> None:
    r = await post(env, b"x" * 2_000_001, PROTOBUF)
    assert r.status_code == 413

    async def chunks() -> Any:
        for _ in range(300):
            yield b"y" * 10_000

    r = await env.client.post("/v1/traces", content=chunks(), headers={**env.auth("acme"), **JSON})
    assert r.status_code == 413 and check_error_body(r.json())["code"] == "payload_too_large"


async def test_huge_attribute_is_cut_and_the_trace_says_so(env: InProcess) -> None:
    r = await post(env, protobuf_body(sdk_spans(lambda t: one_llm_span(t, "A" * 500_000))), PROTOBUF)
    assert r.status_code == 200
    row = (await env.request("acme", "GET", "/traces")).json()["traces"][0]
    trace = (await env.request("acme", "GET", f"/traces/{row['id']}")).json()
    assert len(json.dumps(trace)) < 30_000
    assert trace["replayable"] is False
    assert any("truncated" in i for i in trace["replayIssues"])


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"\xff\xff\xff\xff garbage", PROTOBUF),
        (b"\x0a\xff\xff\xff\xff\x0f", PROTOBUF),  # a length past the end
        (b"{not json", JSON),
        (b"[1, 2]", JSON),
        (json.dumps({"resourceSpans": {"a": 1}}).encode(), JSON),
        (
            json.dumps(
                {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "AAECAwQFBgcICQoLDA0ODw=="}]}]}]}
            ).encode(),
            JSON,
        ),
        (json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "-5"}]}]}]}).encode(), JSON),
        (b"[" * 100_000, JSON),
        (gzip.compress(b"oops")[:-4], {**PROTOBUF, "content-encoding": "gzip"}),
        (b"not gzip", {**JSON, "content-encoding": "gzip"}),
    ],
)
async def test_undecodable_bodies_are_400_in_the_request_encoding(
    env: InProcess, settings: Settings, body: bytes, headers: dict[str, str]
) -> None:
    before = db_snapshot(settings.db_path)
    r = await post(env, body, headers)
    assert r.status_code == 400, r.content[:200]
    if headers["content-type"] == PROTOBUF["content-type"]:
        assert r.headers["content-type"] == "application/x-protobuf"
        code, message = rpc_status(r.content)
        assert code == 3 and message and "Traceback" not in message
    else:
        check_error_body(r.json())
    assert db_snapshot(settings.db_path) == before


async def test_hostile_values_inside_a_valid_body_never_fail_the_request(env: InProcess) -> None:
    def hostile(tracer: Tracer) -> None:
        with tracer.start_as_current_span("chat") as span:
            span.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.request.model": "gpt-4o",
                    "gen_ai.input.messages": "[" * 5000,  # not JSON, deep
                    "gen_ai.output.messages": json.dumps([{"role": 5, "parts": "nope"}]),
                    "gen_ai.usage.input_tokens": -3,
                    "gen_ai.tool.definitions": json.dumps({"not": "a list"}),
                    "gen_ai.conversation.id": "c" * 5000,
                }
            )
            span.add_event("gen_ai.choice", {"message": "{bad json"})

    r = await post(env, json_body(sdk_spans(hostile)), JSON)
    assert r.status_code == 200, r.text
    row = (await env.request("acme", "GET", "/traces")).json()["traces"][0]
    trace = (await env.request("acme", "GET", f"/traces/{row['id']}")).json()
    assert trace["inputTokens"] == 0 and len(trace["sessionId"]) == 200
    assert trace["replayable"] is False


@pytest.mark.parametrize(("levels", "status"), [(12, 200), (40, 400)])
async def test_deeply_nested_kvlist_attribute_is_cut_or_refused(env: InProcess, levels: int, status: int) -> None:
    value: dict[str, Any] = {"stringValue": "leaf"}
    for _ in range(levels):
        value = {"kvlistValue": {"values": [{"key": "k", "value": value}]}}
    span = {
        "traceId": "ab" * 16,
        "spanId": "cd" * 8,
        "name": "chat",
        "attributes": [
            {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
            {"key": "deep", "value": value},
        ],
    }
    body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode()
    r = await post(env, body, JSON)
    assert r.status_code == status
    if status == 200:  # cut at 8 levels, the span stored
        assert r.headers["x-agnt-spans-stored"] == "1"
    else:  # deeper than the JSON limit of every body
        assert "nest" in check_error_body(r.json())["message"]


async def test_a_parent_cycle_does_not_hang(env: InProcess) -> None:
    spans = [
        {
            "traceId": "ab" * 16,
            "spanId": a,
            "parentSpanId": b,
            "name": "chat",
            "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}}],
        }
        for a, b in (("01" * 8, "02" * 8), ("02" * 8, "03" * 8), ("03" * 8, "01" * 8))
    ]
    spans.append({**spans[0], "spanId": "04" * 8, "parentSpanId": "05" * 8})
    spans.append({**spans[0], "spanId": "05" * 8, "parentSpanId": "04" * 8, "attributes": []})
    body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}).encode()
    r = await post(env, body, JSON)
    assert r.status_code == 200 and r.headers["x-agnt-spans-stored"] == "4"


@pytest.mark.parametrize(
    "headers",
    [{}, {"authorization": "Bearer agt_not_a_real_token"}, {"authorization": "Basic dXNlcjpwYXNz"}],
)
async def test_missing_or_wrong_token_is_401_and_stores_nothing(
    env: InProcess, settings: Settings, headers: dict[str, str]
) -> None:
    before = db_snapshot(settings.db_path)
    r = await env.client.post(
        "/v1/traces", content=protobuf_body(sdk_spans(one_llm_span)), headers={**PROTOBUF, **headers}
    )
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert rpc_status(r.content)[0] == 16
    assert db_snapshot(settings.db_path) == before


async def test_a_token_writes_only_into_its_own_tenant(settings: Settings) -> None:
    async with in_process(settings, "acme", "other") as e:
        await e.client.post(
            "/v1/traces", content=protobuf_body(sdk_spans(one_llm_span)), headers={**e.auth("other"), **PROTOBUF}
        )
        assert (await e.request("acme", "GET", "/traces")).json()["traces"] == []
        assert len((await e.request("other", "GET", "/traces")).json()["traces"]) == 1


@pytest.mark.parametrize(
    "headers",
    [{"content-type": "text/plain"}, {"content-type": "application/grpc"}, {**PROTOBUF, "content-encoding": "br"}],
)
async def test_other_media_types_and_encodings_are_415(env: InProcess, headers: dict[str, str]) -> None:
    r = await post(env, b"{}", headers)
    assert r.status_code == 415


async def test_get_is_405_in_the_one_shape(env: InProcess) -> None:
    r = await env.client.get("/v1/traces", headers=env.auth("acme"))
    assert r.status_code == 405 and check_error_body(r.json())["code"] == "invalid_argument"

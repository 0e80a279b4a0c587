"""OTLP/HTTP ingest: LLM spans of every dialect become traces; the OTLP answer; replayability."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import anyio
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.trace import Tracer
from opentelemetry.trace import Status, StatusCode

from agnt_traces.config import Settings
from http_helpers import InProcess, check_error_body, in_process
from otlp_helpers import PROTOBUF, corpus_body, json_body, protobuf_body, sdk_spans

pytestmark = pytest.mark.anyio

JSON = {"content-type": "application/json"}


async def post(env: InProcess, body: bytes, headers: dict[str, str], tenant: str = "acme") -> Any:
    return await env.client.post("/v1/traces", content=body, headers={**env.auth(tenant), **headers})


async def traces_of(env: InProcess, tenant: str = "acme", **query: Any) -> list[dict[str, Any]]:
    rows = (await env.request(tenant, "GET", "/traces", params={"source": "otlp", "limit": 200, **query})).json()
    out = []
    for row in rows["traces"]:
        out.append((await env.request(tenant, "GET", f"/traces/{row['id']}")).json())
    return out


def counts(response: Any) -> dict[str, int]:
    return {
        k.removeprefix("x-agnt-spans-"): int(v) for k, v in response.headers.items() if k.startswith("x-agnt-spans-")
    }


@pytest.fixture
async def env(settings: Settings) -> Any:
    async with in_process(settings, "acme", "other") as e:
        yield e


def genai_current(tracer: Tracer) -> None:
    with tracer.start_as_current_span("invoke_agent support") as agent:
        agent.set_attribute("gen_ai.operation.name", "invoke_agent")
        with tracer.start_as_current_span("chat gpt-4o-mini") as span:
            span.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o-mini",
                    "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
                    "gen_ai.request.temperature": 0.2,
                    "gen_ai.request.max_tokens": 100,
                    "gen_ai.conversation.id": "conv-7",
                    "gen_ai.usage.input_tokens": 30,
                    "gen_ai.usage.output_tokens": 8,
                    "gen_ai.usage.cache_read.input_tokens": 12,
                    "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "Be brief."}]),
                    "gen_ai.input.messages": json.dumps(
                        [
                            {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
                            {
                                "role": "assistant",
                                "parts": [
                                    {"type": "tool_call", "id": "c1", "name": "weather", "arguments": {"city": "Paris"}}
                                ],
                            },
                            {
                                "role": "tool",
                                "parts": [{"type": "tool_call_response", "id": "c1", "response": "sunny"}],
                            },
                        ]
                    ),
                    "gen_ai.output.messages": json.dumps(
                        [
                            {
                                "role": "assistant",
                                "parts": [{"type": "text", "content": "Sunny."}],
                                "finish_reason": "stop",
                            }
                        ]
                    ),
                    "gen_ai.tool.definitions": json.dumps(
                        [{"type": "function", "name": "weather", "parameters": {"type": "object"}}]
                    ),
                }
            )


async def test_genai_semconv_span_becomes_one_replayable_trace(env: InProcess) -> None:
    spans = sdk_spans(genai_current)
    r = await post(env, protobuf_body(spans), PROTOBUF)
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-protobuf"
    assert ExportTraceServiceResponse.FromString(r.content).partial_success.rejected_spans == 0
    assert counts(r) == {"stored": 1, "duplicate": 0, "skipped": 1, "rejected": 0}
    (trace,) = await traces_of(env)
    llm = next(s for s in spans if s.name.startswith("chat"))
    assert trace["id"] == f"otel_{llm.context.trace_id:032x}_{llm.context.span_id:016x}"
    assert trace["manifest"]["system"] == "Be brief."
    assert trace["manifest"]["tools"][0]["function"]["name"] == "weather"
    assert trace["manifest"]["model"]["params"] == {"temperature": 0.2, "max_tokens": 100}
    assert trace["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    assert trace["output"] == "Sunny."
    assert (trace["inputTokens"], trace["outputTokens"], trace["totalTokens"]) == (30, 8, 38)
    assert trace["model"] == {"provider": "openai", "name": "gpt-4o-mini-2024-07-18", "metadata": {}}
    assert trace["metadata"]["usage"] == {"cache_read.input_tokens": 12}
    assert trace["metadata"]["otel"]["conversationId"] == "conv-7" and trace["sessionId"] == "conv-7"
    assert trace["metadata"]["otel"]["parentSpanId"] == f"{llm.parent.span_id:016x}"  # type: ignore[union-attr]
    assert trace["metadata"]["costEstimated"] is True and trace["cost"] > 0
    assert trace["tags"] == ["service:shop", "env:test"]
    assert trace["duration"] is not None and trace["duration"] >= 0
    assert trace["source"] == "otlp" and trace["replayable"] is True and "replayIssues" not in trace
    # the conversation lists the agent's calls
    rows = (await env.request("acme", "GET", "/traces", params={"session_id": "conv-7"})).json()["traces"]
    assert [row["id"] for row in rows] == [trace["id"]]


def genai_events(tracer: Tracer) -> None:
    with tracer.start_as_current_span("chat claude") as span:
        span.set_attributes(
            {"gen_ai.system": "anthropic", "gen_ai.request.model": "claude-sonnet-4-5", "gen_ai.operation.name": "chat"}
        )
        span.add_event("gen_ai.system.message", {"content": "Answer in French."})
        span.add_event("gen_ai.user.message", {"content": "Hello"})
        span.add_event(
            "gen_ai.choice",
            {"index": 0, "finish_reason": "stop", "message": json.dumps({"role": "assistant", "content": "Bonjour"})},
        )
    with tracer.start_as_current_span("chat details") as span:
        span.set_attributes(
            {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o"}
        )
        span.add_event(
            "gen_ai.client.inference.operation.details",
            {
                "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "2+2?"}]}]),
                "gen_ai.output.messages": json.dumps(
                    [{"role": "assistant", "parts": [{"type": "text", "content": "4"}]}]
                ),
            },
        )


async def test_genai_event_forms_as_otlp_json(env: InProcess) -> None:
    r = await post(env, json_body(sdk_spans(genai_events)), JSON)
    assert r.status_code == 200 and r.json() == {}
    by_model = {t["model"]["name"]: t for t in await traces_of(env)}
    claude = by_model["claude-sonnet-4-5"]
    assert claude["manifest"]["system"] == "Answer in French."
    assert claude["messages"] == [{"role": "user", "content": "Hello"}]
    assert claude["output"] == "Bonjour" and claude["model"]["provider"] == "anthropic"
    assert claude["metadata"]["otel"]["dialect"] == "genai_events"
    details = by_model["gpt-4o"]
    assert details["messages"] == [{"role": "user", "content": "2+2?"}] and details["output"] == "4"


def indexed_form(tracer: Tracer) -> None:
    with tracer.start_as_current_span("litellm_request") as span:
        span.set_attributes(
            {
                "gen_ai.system": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.prompt.0.role": "system",
                "gen_ai.prompt.0.content": "Be nice.",
                "gen_ai.prompt.1.role": "user",
                "gen_ai.prompt.1.content": "Hi",
                "gen_ai.completion.0.role": "assistant",
                "gen_ai.completion.0.content": "Hello!",
                "gen_ai.completion.0.finish_reason": "stop",
                "gen_ai.usage.prompt_tokens": 9,
                "gen_ai.usage.completion_tokens": 2,
                "llm.usage.total_tokens": 11,
            }
        )


async def test_indexed_litellm_openllmetry_form(env: InProcess) -> None:
    r = await post(env, protobuf_body(sdk_spans(indexed_form)), PROTOBUF)
    assert counts(r)["stored"] == 1
    (trace,) = await traces_of(env)
    assert trace["manifest"]["system"] == "Be nice." and trace["messages"] == [{"role": "user", "content": "Hi"}]
    assert trace["output"] == "Hello!" and (trace["inputTokens"], trace["outputTokens"], trace["totalTokens"]) == (
        9,
        2,
        11,
    )
    assert trace["metadata"]["finishReason"] == "stop" and trace["replayable"] is True


def openinference(tracer: Tracer) -> None:
    with tracer.start_as_current_span("agent") as agent:
        agent.set_attribute("openinference.span.kind", "AGENT")
        with tracer.start_as_current_span("ChatCompletion") as span:
            span.set_attributes(
                {
                    "openinference.span.kind": "LLM",
                    "llm.model_name": "gpt-4o-mini",
                    "llm.provider": "openai",
                    "llm.input_messages.0.message.role": "system",
                    "llm.input_messages.0.message.content": "You help Acme.",
                    "llm.input_messages.1.message.role": "user",
                    "llm.input_messages.1.message.contents.0.message_content.type": "text",
                    "llm.input_messages.1.message.contents.0.message_content.text": "Where is my order?",
                    "llm.output_messages.0.message.role": "assistant",
                    "llm.output_messages.0.message.content": "It ships today.",
                    "llm.token_count.prompt": 14,
                    "llm.token_count.completion": 4,
                    "llm.token_count.total": 18,
                    "llm.token_count.prompt_details.cache_read": 3,
                    "llm.invocation_parameters": json.dumps(
                        {"temperature": 0, "max_completion_tokens": 50, "api_base": "http://evil"}
                    ),
                    "llm.prompt_template.template": "You help {{ company }}.",
                    "llm.prompt_template.variables": json.dumps({"company": "Acme"}),
                    "llm.prompt_template.version": "support@1",
                    "session.id": "s-1",
                    "tag.tags": ["beta"],
                }
            )
            with tracer.start_as_current_span("tool") as tool:
                tool.set_attribute("openinference.span.kind", "TOOL")


async def test_openinference_with_a_template_that_names_a_hosted_prompt(env: InProcess) -> None:
    content = {
        "blocks": [{"id": "sys", "role": "system", "content": "You help {{ company }}."}],
        "variables": [{"name": "company"}],
    }
    assert (await env.request("acme", "PUT", "/prompts/support", json={"content": content})).status_code in (200, 201)
    assert (await env.request("acme", "POST", "/prompts/support/publish", json={})).status_code in (200, 201)
    r = await post(env, protobuf_body(sdk_spans(openinference)), PROTOBUF)
    assert counts(r) == {"stored": 1, "duplicate": 0, "skipped": 2, "rejected": 0}
    (trace,) = await traces_of(env)
    assert (trace["promptName"], trace["promptVersion"], trace["variables"]) == ("support", 1, {"company": "Acme"})
    assert trace["messages"] == [{"role": "user", "content": "Where is my order?"}]
    assert trace["manifest"]["model"]["params"] == {"temperature": 0, "max_tokens": 50}  # no api_base
    assert trace["metadata"]["usage"] == {"cacheReadInputTokens": 3} and trace["tags"][-1] == "beta"
    assert trace["sessionId"] == "s-1" and trace["metadata"]["otel"]["dialect"] == "openinference"
    diff = await env.request("acme", "GET", f"/traces/{trace['id']}/diff")
    assert diff.status_code == 200, diff.text
    # the same template under a prompt this tenant does not host: kept as metadata only
    r = await post(env, protobuf_body(sdk_spans(openinference)), PROTOBUF, tenant="other")
    (foreign,) = await traces_of(env, "other")
    assert foreign["promptName"] is None and foreign["metadata"]["promptTemplate"]["version"] == "support@1"


async def test_vercel_ai_sdk_recorded_spans(env: InProcess) -> None:
    r = await post(env, corpus_body("vercel_ai_sdk.json"), JSON)
    assert counts(r) == {"stored": 2, "duplicate": 0, "skipped": 1, "rejected": 0}  # the wrapper span is not a call
    by_span = {t["metadata"]["otel"]["spanId"]: t for t in await traces_of(env)}
    text = by_span["eee19b7ec3c1b175"]
    assert text["manifest"]["system"] == "You are a terse assistant."
    assert text["messages"] == [{"role": "user", "content": "What is the capital of France?"}]
    assert text["output"] == "Paris." and text["model"]["provider"] == "openai"
    assert text["manifest"]["model"]["params"] == {"temperature": 0.3, "max_tokens": 64}
    assert (text["inputTokens"], text["outputTokens"]) == (21, 2) and text["sessionId"] == "chat-42"
    assert text["tags"] == ["service:next-app", "env:preview"] and text["duration"] == pytest.approx(0.84)
    tool = by_span["eee19b7ec3c1b176"]
    assert tool["toolCalls"] == [
        {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}}
    ]
    assert tool["manifest"]["tools"][0]["function"]["name"] == "weather" and tool["replayable"] is True


async def test_claude_code_recorded_spans_without_content_are_not_replayable(env: InProcess) -> None:
    r = await post(env, corpus_body("claude_code.json"), JSON)
    assert counts(r) == {"stored": 2, "duplicate": 0, "skipped": 2, "rejected": 0}
    by_span = {t["metadata"]["otel"]["spanId"]: t for t in await traces_of(env)}
    ok = by_span["b7ad6b7169203332"]
    assert ok["model"]["name"] == "claude-sonnet-4-5" and ok["model"]["provider"] == "anthropic"
    assert ok["metadata"]["usage"] == {"cacheReadInputTokens": 84562, "cacheCreationInputTokens": 7096}
    assert ok["sessionId"] == "cec62d6f-60f8-43e8-a67b-133b2a138a83"
    assert ok["replayable"] is False and any("no input messages" in i for i in ok["replayIssues"])
    failed = by_span["b7ad6b7169203334"]
    assert failed["status"] == "error" and failed["error"]["message"] == "Overloaded"


def failing(tracer: Tracer) -> None:
    with tracer.start_as_current_span("chat") as span:
        span.set_attributes(
            {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o"}
        )
        span.set_attribute(
            "gen_ai.input.messages", json.dumps([{"role": "user", "parts": [{"type": "text", "content": "hi"}]}])
        )
        span.record_exception(TimeoutError("upstream timed out"))
        span.set_status(Status(StatusCode.ERROR, "timeout"))


async def test_errors_from_status_and_exception_events(env: InProcess) -> None:
    await post(env, protobuf_body(sdk_spans(failing)), PROTOBUF)
    (trace,) = await traces_of(env)
    assert trace["status"] == "error"
    assert trace["error"] == {"type": "TimeoutError", "message": "upstream timed out"}
    assert trace["replayable"] is True  # a failed call with its prompt can be re-run


def nested_llm(tracer: Tracer) -> None:
    with tracer.start_as_current_span("outer") as outer:
        outer.set_attributes(
            {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", "gen_ai.provider.name": "openai"}
        )
        with tracer.start_as_current_span("step") as step:
            step.set_attribute("gen_ai.operation.name", "execute_tool")
            with tracer.start_as_current_span("inner") as inner:
                inner.set_attributes(
                    {
                        "gen_ai.operation.name": "chat",
                        "gen_ai.request.model": "gpt-4o",
                        "gen_ai.provider.name": "openai",
                    }
                )


async def test_parent_llm_span_becomes_parent_trace_and_missing_content_is_named(env: InProcess) -> None:
    await post(env, protobuf_body(sdk_spans(nested_llm)), PROTOBUF)
    by_name = {t["metadata"]["otel"]["name"]: t for t in await traces_of(env)}
    assert by_name["inner"]["parentTraceId"] == by_name["outer"]["id"]
    assert by_name["outer"]["parentTraceId"] is None
    issues = by_name["inner"]["replayIssues"]
    assert by_name["inner"]["replayable"] is False
    assert any("no input messages" in i for i in issues) and any("output not captured" in i for i in issues)


async def test_a_retried_export_is_a_noop_and_a_changed_span_is_refused_alone(env: InProcess) -> None:
    spans = sdk_spans(indexed_form) + sdk_spans(genai_current)
    body = protobuf_body(spans)
    assert counts(await post(env, body, PROTOBUF))["stored"] == 2
    again = await post(env, body, PROTOBUF)
    assert counts(again) == {"stored": 0, "duplicate": 2, "skipped": 1, "rejected": 0}
    changed = json.loads(json_body(spans))
    for kv in changed["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"]:
        if kv["key"] == "gen_ai.completion.0.content":
            kv["value"] = {"stringValue": "tampered"}
    r = await post(env, json.dumps(changed).encode(), JSON)
    assert r.status_code == 200
    assert r.json()["partialSuccess"]["rejectedSpans"] == "1"
    assert "already exists with different content" in r.json()["partialSuccess"]["errorMessage"]
    assert len(await traces_of(env)) == 2
    assert "tampered" not in json.dumps(await traces_of(env))


async def test_protobuf_and_json_give_the_same_trace(settings: Settings, tmp_path: Any) -> None:
    spans = sdk_spans(genai_current)
    results = []
    for i, (body, headers) in enumerate(((protobuf_body(spans), PROTOBUF), (json_body(spans), JSON))):
        async with in_process(dataclasses.replace(settings, db_path=str(tmp_path / f"{i}.db")), "acme") as e:
            await post(e, body, headers)
            results.append(await traces_of(e))
    assert results[0] == results[1]


async def test_playground_refuses_to_run_a_non_replayable_trace_until_fixed(env: InProcess) -> None:
    def no_model(tracer: Tracer) -> None:
        with tracer.start_as_current_span("chat") as span:
            span.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.input.messages": json.dumps(
                        [{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]
                    ),
                    "gen_ai.output.messages": json.dumps(
                        [{"role": "assistant", "parts": [{"type": "text", "content": "yo"}]}]
                    ),
                }
            )

    await post(env, protobuf_body(sdk_spans(no_model)), PROTOBUF)
    (trace,) = await traces_of(env)
    assert trace["replayIssues"] == ["model unknown: the span does not name the model; pick one with update_models"]
    opened = await env.request("acme", "POST", f"/traces/{trace['id']}/playground/sessions")
    assert opened.status_code in (200, 201) and opened.json()["replayable"] is False  # opening to look is fine
    sid = opened.json()["id"]
    refused = await env.request("acme", "POST", f"/playground/sessions/{sid}/run")
    err = check_error_body(refused.json())
    assert refused.status_code == 400 and err["code"] == "invalid_argument" and "model unknown" in err["message"]
    fixed = await env.request(
        "acme",
        "PATCH",
        f"/playground/sessions/{sid}/models",
        json={"models": [{"provider": "agnt-local", "name": "echo"}]},
    )
    assert fixed.status_code == 200 and fixed.json()["replayable"] is True
    with anyio.fail_after(30):
        ran = await env.request("acme", "POST", f"/playground/sessions/{sid}/run")
    assert ran.status_code == 200 and ran.json()["runs"][0]["status"] == "success"


async def test_traces_of_other_sources_say_they_are_replayable(env: InProcess) -> None:
    from factories import trace_payload

    posted = await env.request("acme", "POST", "/traces", json=trace_payload())
    trace = (await env.request("acme", "GET", f"/traces/{posted.json()['id']}")).json()
    assert trace["replayable"] is True
    empty = await env.request(
        "acme", "POST", "/traces", json={"model": {"provider": "openai", "name": "gpt-4o"}, "output": "x"}
    )
    trace = (await env.request("acme", "GET", f"/traces/{empty.json()['id']}")).json()
    assert trace["replayable"] is False and trace["replayIssues"][0].startswith("no input messages")

"""What each instrumentation writes on an LLM span, read into one :class:`Call`.

Dialects (an LLM span may carry several: LiteLLM writes the GenAI conventions and OpenInference's span
kind, the Vercel AI SDK writes its own ``ai.*`` keys and some ``gen_ai.*`` ones). Each reader fills only
what is still unknown, in the order of :data:`READERS`, so the richest form wins:

* ``claude_code``  Claude Code's ``claude_code.llm_request`` spans (``model``, ``input_tokens``…).
* ``vercel``       Vercel AI SDK ``ai.*.doGenerate`` / ``doStream`` spans (``ai.prompt.messages``…).
* ``openinference``  ``llm.input_messages.{i}.message.*``, ``llm.token_count.*``, ``llm.prompt_template.*``.
* ``genai``        OTel GenAI conventions, current: ``gen_ai.input.messages`` / ``output.messages`` /
  ``system_instructions`` / ``tool.definitions`` (also inside the
  ``gen_ai.client.inference.operation.details`` event).
* ``genai_events`` the older event form: ``gen_ai.{system,user,assistant,tool}.message`` and ``gen_ai.choice``.
* ``indexed``      LiteLLM's / OpenLLMetry's ``gen_ai.prompt.{i}.*`` and ``gen_ai.completion.{i}.*``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .decode import Span
from .messages import (
    MAX_TOOL_CALLS,
    Content,
    indexed,
    json_attr,
    normalize_message,
    normalize_messages,
    num,
    split_system,
    text,
)

__all__ = ["READERS", "Call", "is_llm_span", "provider_name"]

#: Operation names of LLM calls (``gen_ai.operation.name``); anything else named there is not one.
LLM_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "completion"})
VERCEL_CALLS = frozenset(
    {"ai.generateText.doGenerate", "ai.streamText.doStream", "ai.generateObject.doGenerate", "ai.streamObject.doStream"}
)
_PARAMS = {
    "temperature": "temperature",
    "max_tokens": "max_tokens",
    "top_p": "top_p",
    "top_k": "top_k",
    "seed": "seed",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
    "stop_sequences": "stop",
}
#: Provider names of the conventions / instrumentations → LiteLLM's provider names.
_PROVIDERS = {
    "aws.bedrock": "bedrock",
    "aws": "bedrock",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure_ai",
    "gcp.gemini": "gemini",
    "gcp.gen_ai": "gemini",
    "gcp.vertex_ai": "vertex_ai",
    "vertexai": "vertex_ai",
    "google": "gemini",
    "mistral_ai": "mistral",
    "mistralai": "mistral",
    "x_ai": "xai",
    "ibm.watsonx.ai": "watsonx",
}


def provider_name(raw: str | None) -> str | None:
    if not raw:
        return None
    raw = raw.strip().lower()
    if raw in _PROVIDERS:
        return _PROVIDERS[raw]
    head = raw.split(".", 1)[0]  # the Vercel AI SDK: "openai.chat", "anthropic.messages"
    return _PROVIDERS.get(head, head)[:64] or None


@dataclass(slots=True)
class Call:
    """One LLM call as read from a span; None = not found (yet)."""

    dialect: str = ""  # the reader that found the input messages, else the first that matched
    reading: str = ""  # the reader at work
    messages: list[dict[str, Any]] | None = None
    system: str | None = None
    tools: list[dict[str, Any]] | None = None
    output: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    output_seen: bool = False  # an output message was there (even without text)
    provider: str | None = None
    model: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    cost: float | None = None
    usage: dict[str, int] = field(default_factory=dict)  # cache / reasoning tokens
    finish_reason: str | None = None
    conversation_id: str | None = None
    prompt_template: dict[str, Any] | None = None  # {template, variables, version}
    app_metadata: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    content: Content = field(default_factory=Content)

    def set_input(self, messages: list[dict[str, Any]] | None) -> None:
        if messages is None or self.messages is not None:
            return
        system, rest = split_system(messages)
        self.messages = rest
        self.dialect = self.reading
        if system and self.system is None:
            self.system = system

    def set_output(self, messages: list[dict[str, Any]] | None) -> None:
        if not messages or self.output_seen:
            return
        self.output_seen = True
        texts = [m["content"] for m in messages if isinstance(m.get("content"), str)]
        self.output = "\n".join(texts) if texts else None
        calls = [c for m in messages for c in m.get("tool_calls", [])]
        if calls:
            self.tool_calls = calls[:MAX_TOOL_CALLS]

    def set(self, name: str, value: Any) -> None:
        if value is not None and getattr(self, name) is None:
            setattr(self, name, value)

    def param(self, name: str, value: Any) -> None:
        if (
            isinstance(value, int | float | str | list | dict)
            and not isinstance(value, bool)
            and name not in self.params
        ):
            self.params[name] = value


def is_llm_span(span: Span) -> bool:
    """Whether a span is one LLM call (not an agent, tool, chain, embedding or retriever step)."""
    a = span.attrs
    if span.name == "claude_code.llm_request":
        return True
    kind = a.get("openinference.span.kind")
    if isinstance(kind, str):
        return kind.upper() == "LLM"
    op_id = a.get("ai.operationId")
    if isinstance(op_id, str):
        return op_id in VERCEL_CALLS
    op = a.get("gen_ai.operation.name")
    if isinstance(op, str):
        return op in LLM_OPERATIONS
    return any(
        k in a
        for k in ("gen_ai.input.messages", "gen_ai.prompt.0.role", "gen_ai.prompt.0.content", "gen_ai.request.model")
    ) or any(ev.name == "gen_ai.client.inference.operation.details" for ev in span.events)


# -- Claude Code -------------------------------------------------------------------------------------------


def read_claude_code(span: Span, call: Call) -> None:
    if span.name != "claude_code.llm_request":
        return
    a = span.attrs
    call.reading = "claude_code"
    call.set("provider", "anthropic")
    call.set("model", text(a.get("model")))
    call.set("input_tokens", num(a.get("input_tokens")))
    call.set("output_tokens", num(a.get("output_tokens")))
    for key, name in (
        ("cache_read_tokens", "cacheReadInputTokens"),
        ("cache_creation_tokens", "cacheCreationInputTokens"),
    ):
        if num(a.get(key)) is not None:
            call.usage.setdefault(name, num(a.get(key)) or 0)
    cost = a.get("cost_usd")
    if isinstance(cost, int | float) and not isinstance(cost, bool) and 0 <= cost <= 1e6:
        call.set("cost", float(cost))
    call.set("conversation_id", text(a.get("session.id")))
    call.set("finish_reason", text(a.get("stop_reason")))


# -- Vercel AI SDK -------------------------------------------------------------------------------------------


def read_vercel(span: Span, call: Call) -> None:
    a = span.attrs
    if not isinstance(a.get("ai.operationId"), str) and "ai.model.id" not in a:
        return
    call.reading = "vercel"
    seen = call.content
    call.set_input(normalize_messages(json_attr(a.get("ai.prompt.messages"), "ai.prompt.messages", seen), seen))
    response_text = text(a.get("ai.response.text"))
    calls_raw = json_attr(a.get("ai.response.toolCalls"), "ai.response.toolCalls", seen)
    if response_text is not None or isinstance(calls_raw, list):
        parts: list[dict[str, Any]] = []
        if isinstance(calls_raw, list):
            parts = [
                {
                    "type": "tool-call",
                    "toolCallId": c.get("toolCallId"),
                    "toolName": c.get("toolName"),
                    "input": c.get("input", c.get("args")),
                }
                for c in calls_raw
                if isinstance(c, dict)
            ]
        message = normalize_message({"role": "assistant", "content": parts}, seen) if parts else None
        if message is not None and response_text is not None:
            message["content"] = response_text
        call.set_output([message] if message is not None else [{"role": "assistant", "content": response_text}])
    tools = a.get("ai.prompt.tools")
    if isinstance(tools, list) and call.tools is None:
        parsed = [json_attr(t, "ai.prompt.tools", seen) for t in tools[:MAX_TOOL_CALLS]]
        call.tools = [
            _function_tool(t.get("name"), t.get("description"), t.get("inputSchema", t.get("parameters")))
            for t in parsed
            if isinstance(t, dict)
        ]
    call.set("provider", provider_name(text(a.get("ai.model.provider"))))
    call.set("model", text(a.get("ai.response.model")) or text(a.get("ai.model.id")))
    call.set("input_tokens", num(a.get("ai.usage.promptTokens", a.get("ai.usage.inputTokens"))))
    call.set("output_tokens", num(a.get("ai.usage.completionTokens", a.get("ai.usage.outputTokens"))))
    call.set("total_tokens", num(a.get("ai.usage.totalTokens")))
    for key, name in (
        ("ai.usage.cachedInputTokens", "cacheReadInputTokens"),
        ("ai.usage.reasoningTokens", "reasoningTokens"),
    ):
        if num(a.get(key)) is not None:
            call.usage.setdefault(name, num(a.get(key)) or 0)
    call.set("finish_reason", text(a.get("ai.response.finishReason")))
    for key, name in (
        ("temperature", "temperature"),
        ("maxTokens", "max_tokens"),
        ("maxOutputTokens", "max_tokens"),
        ("topP", "top_p"),
        ("topK", "top_k"),
        ("seed", "seed"),
        ("frequencyPenalty", "frequency_penalty"),
        ("presencePenalty", "presence_penalty"),
        ("stopSequences", "stop"),
    ):
        call.param(name, a.get(f"ai.settings.{key}"))
    prefix = "ai.telemetry.metadata."
    for key, value in a.items():
        if key.startswith(prefix) and len(call.app_metadata) < 64:
            call.app_metadata[key[len(prefix) :]] = value
    session = call.app_metadata.get("sessionId", call.app_metadata.get("conversationId"))
    call.set("conversation_id", text(session))


def _function_tool(name: Any, description: Any, parameters: Any) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": name if isinstance(name, str) else ""}
    if isinstance(description, str):
        fn["description"] = description
    if isinstance(parameters, dict):
        fn["parameters"] = parameters
    return {"type": "function", "function": fn}


# -- OpenInference -----------------------------------------------------------------------------------------------


def _oi_messages(attrs: dict[str, Any], prefix: str, call: Call) -> list[dict[str, Any]] | None:
    groups = indexed(attrs, prefix)
    if not groups:
        return None
    out = []
    for g in groups:
        role = text(g.get("message.role")) or "user"
        content: Any = g.get("message.content")
        if content is None:
            parts = indexed(g, "message.contents.")
            texts = [text(p.get("message_content.text")) for p in parts]
            if any(p.get("message_content.type") not in (None, "text") for p in parts):
                call.content.non_text = True
            content = "\n".join(t for t in texts if t) or None
        message: dict[str, Any] = {"role": role, "content": content if isinstance(content, str) else None}
        calls = indexed(g, "message.tool_calls.")
        if calls:
            message["tool_calls"] = [
                {
                    "id": text(c.get("tool_call.id")) or "",
                    "type": "function",
                    "function": {
                        "name": text(c.get("tool_call.function.name")) or "",
                        "arguments": text(c.get("tool_call.function.arguments")) or "",
                    },
                }
                for c in calls[:MAX_TOOL_CALLS]
            ]
        if isinstance(g.get("message.tool_call_id"), str):
            message["tool_call_id"] = g["message.tool_call_id"]
        if isinstance(g.get("message.name"), str):
            message["name"] = g["message.name"]
        out.append(message)
    return out


def read_openinference(span: Span, call: Call) -> None:
    a = span.attrs
    if "openinference.span.kind" not in a and "llm.model_name" not in a:
        return
    call.reading = "openinference"
    seen = call.content
    call.set_input(_oi_messages(a, "llm.input_messages.", call))
    call.set_output(_oi_messages(a, "llm.output_messages.", call))
    tools = indexed(a, "llm.tools.")
    if tools and call.tools is None:
        parsed = [json_attr(t.get("tool.json_schema"), "llm.tools.tool.json_schema", seen) for t in tools]
        call.tools = [t for t in parsed if isinstance(t, dict)]
    call.set("model", text(a.get("llm.model_name")))
    call.set("provider", provider_name(text(a.get("llm.provider")) or text(a.get("llm.system"))))
    call.set("input_tokens", num(a.get("llm.token_count.prompt")))
    call.set("output_tokens", num(a.get("llm.token_count.completion")))
    call.set("total_tokens", num(a.get("llm.token_count.total")))
    for key, name in (
        ("llm.token_count.prompt_details.cache_read", "cacheReadInputTokens"),
        ("llm.token_count.prompt_details.cache_write", "cacheCreationInputTokens"),
        ("llm.token_count.completion_details.reasoning", "reasoningTokens"),
    ):
        if num(a.get(key)) is not None:
            call.usage.setdefault(name, num(a.get(key)) or 0)
    params = json_attr(a.get("llm.invocation_parameters"), "llm.invocation_parameters", seen)
    if isinstance(params, dict):
        for key, value in params.items():
            if key in (
                "temperature",
                "max_tokens",
                "max_completion_tokens",
                "top_p",
                "seed",
                "stop",
                "frequency_penalty",
                "presence_penalty",
                "response_format",
                "tool_choice",
            ):
                call.param(
                    "max_tokens" if key == "max_completion_tokens" else key,
                    value,
                )
    template = text(a.get("llm.prompt_template.template"))
    variables = json_attr(a.get("llm.prompt_template.variables"), "llm.prompt_template.variables", seen)
    version = a.get("llm.prompt_template.version")
    if template is not None or isinstance(variables, dict) or version is not None:
        call.prompt_template = {
            "template": template,
            "variables": variables if isinstance(variables, dict) else None,
            "version": str(version)[:200] if version is not None else None,
            "name": text(a.get("llm.prompt_template.name")),
        }
    call.set("conversation_id", text(a.get("session.id")))
    meta = json_attr(a.get("metadata"), "metadata", seen)
    if isinstance(meta, dict):
        for key, value in list(meta.items())[:64]:
            call.app_metadata.setdefault(str(key)[:128], value)
    tags = a.get("tag.tags")
    if isinstance(tags, list):
        call.tags.extend(t for t in tags[:32] if isinstance(t, str))
    if isinstance(a.get("user.id"), str):
        call.app_metadata.setdefault("userId", a["user.id"])


# -- OTel GenAI conventions ----------------------------------------------------------------------------------------


def _genai_attrs(span: Span) -> dict[str, Any]:
    """The span's attributes, with those of a ``gen_ai.client.inference.operation.details`` event under them."""
    for ev in span.events:
        if ev.name == "gen_ai.client.inference.operation.details":
            return {**ev.attrs, **span.attrs}
    return span.attrs


def read_genai(span: Span, call: Call) -> None:
    a = _genai_attrs(span)
    seen = call.content
    if not any(k.startswith("gen_ai.") for k in a):
        return
    call.reading = "genai"
    system = json_attr(a.get("gen_ai.system_instructions"), "gen_ai.system_instructions", seen)
    if isinstance(system, list) and call.system is None:
        texts = [p["content"] for p in system if isinstance(p, dict) and isinstance(p.get("content"), str)]
        call.system = "\n\n".join(texts)
    elif isinstance(system, str) and call.system is None:
        call.system = system
    call.set_input(normalize_messages(json_attr(a.get("gen_ai.input.messages"), "gen_ai.input.messages", seen), seen))
    out = normalize_messages(json_attr(a.get("gen_ai.output.messages"), "gen_ai.output.messages", seen), seen)
    if out:
        raw_out = json_attr(a.get("gen_ai.output.messages"), "gen_ai.output.messages", seen)
        reason = (
            raw_out[0].get("finish_reason")
            if isinstance(raw_out, list) and raw_out and isinstance(raw_out[0], dict)
            else None
        )
        call.set("finish_reason", text(reason))
    call.set_output(out)
    tools = json_attr(a.get("gen_ai.tool.definitions"), "gen_ai.tool.definitions", seen)
    if isinstance(tools, list) and call.tools is None:
        call.tools = [
            _function_tool(t.get("name"), t.get("description"), t.get("parameters"))
            for t in tools[:MAX_TOOL_CALLS]
            if isinstance(t, dict)
        ]
    call.set("provider", provider_name(text(a.get("gen_ai.provider.name")) or text(a.get("gen_ai.system"))))
    call.set("model", text(a.get("gen_ai.response.model")) or text(a.get("gen_ai.request.model")))
    call.set("input_tokens", num(a.get("gen_ai.usage.input_tokens", a.get("gen_ai.usage.prompt_tokens"))))
    call.set("output_tokens", num(a.get("gen_ai.usage.output_tokens", a.get("gen_ai.usage.completion_tokens"))))
    call.set("total_tokens", num(a.get("gen_ai.usage.total_tokens", a.get("llm.usage.total_tokens"))))
    for key, value in a.items():
        if (
            key.startswith("gen_ai.usage.")
            and key not in _MAIN_USAGE
            and num(value) is not None
            and len(call.usage) < 16
        ):
            call.usage.setdefault(key[len("gen_ai.usage.") :], num(value) or 0)
    for key, name in _PARAMS.items():
        call.param(name, a.get(f"gen_ai.request.{key}"))
    reasons = a.get("gen_ai.response.finish_reasons")
    if isinstance(reasons, list) and reasons and isinstance(reasons[0], str):
        call.set("finish_reason", reasons[0])
    call.set("conversation_id", text(a.get("gen_ai.conversation.id")))
    cost = a.get("gen_ai.usage.cost", a.get("gen_ai.cost.total_cost"))
    if isinstance(cost, int | float) and not isinstance(cost, bool) and 0 <= cost <= 1e6:
        call.set("cost", float(cost))


_MAIN_USAGE = frozenset(
    {
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.prompt_tokens",
        "gen_ai.usage.completion_tokens",
        "gen_ai.usage.total_tokens",
        "gen_ai.usage.cost",
    }
)
_EVENT_ROLES = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}


def _event_body(attrs: dict[str, Any], seen: Content) -> dict[str, Any]:
    """An event's body: ``gen_ai.event.content`` (JSON), else its attributes as they are."""
    body = json_attr(attrs.get("gen_ai.event.content"), "gen_ai.event.content", seen)
    if isinstance(body, dict):
        return body
    out = dict(attrs)
    for key in ("tool_calls", "message"):
        if isinstance(out.get(key), str):
            out[key] = json_attr(out[key], key, seen)
    return out


def read_genai_events(span: Span, call: Call) -> None:
    seen = call.content
    inputs: list[dict[str, Any]] = []
    outputs: list[dict[str, Any]] = []
    for ev in span.events:
        role = _EVENT_ROLES.get(ev.name)
        if role is not None:
            body = _event_body(ev.attrs, seen)
            message = normalize_message({**body, "role": body.get("role", role) if role != "tool" else "tool"}, seen)
            if message is not None:
                inputs.append(message)
        elif ev.name == "gen_ai.choice":
            body = _event_body(ev.attrs, seen)
            inner = body.get("message")
            raw: dict[str, Any] = inner if isinstance(inner, dict) else body
            message = normalize_message({**raw, "role": "assistant"}, seen)
            if message is not None:
                outputs.append(message)
            call.set("finish_reason", text(body.get("finish_reason")))
    if inputs or outputs:
        call.reading = "genai_events"
    if inputs:
        call.set_input(inputs)
    if outputs:
        call.set_output(outputs)


# -- indexed (LiteLLM, OpenLLMetry) ------------------------------------------------------------------------------


def _indexed_messages(attrs: dict[str, Any], prefix: str, seen: Content) -> list[dict[str, Any]] | None:
    groups = indexed(attrs, prefix)
    if not groups:
        return None
    out = []
    for g in groups:
        content: Any = g.get("content")
        if isinstance(content, str) and content[:1] == "[":
            parsed = json_attr(content, f"{prefix}content", seen)  # multimodal content as a JSON list
            content = parsed if isinstance(parsed, list) else content
        raw: dict[str, Any] = {"role": text(g.get("role")) or "user", "content": content}
        calls = indexed(g, "tool_calls.")
        if calls:
            raw["tool_calls"] = [
                {"id": c.get("id"), "function": {"name": c.get("name"), "arguments": c.get("arguments")}} for c in calls
            ]
        if isinstance(g.get("tool_call_id"), str):
            raw["tool_call_id"] = g["tool_call_id"]
        message = normalize_message(raw, seen)
        if message is not None:
            out.append(message)
    return out


def read_indexed(span: Span, call: Call) -> None:
    a = span.attrs
    seen = call.content
    prompts = _indexed_messages(a, "gen_ai.prompt.", seen)
    completions = _indexed_messages(a, "gen_ai.completion.", seen)
    if prompts is None and completions is None:
        return
    call.reading = "indexed"
    call.set_input(prompts)
    call.set_output(completions)
    call.set("input_tokens", num(a.get("llm.usage.prompt_tokens")))
    call.set("output_tokens", num(a.get("llm.usage.completion_tokens")))
    if completions:
        finish = indexed(a, "gen_ai.completion.")
        call.set("finish_reason", text(finish[0].get("finish_reason")) if finish else None)


READERS: tuple[Callable[[Span, Call], None], ...] = (
    read_claude_code,
    read_vercel,
    read_openinference,
    read_genai,
    read_genai_events,
    read_indexed,
)

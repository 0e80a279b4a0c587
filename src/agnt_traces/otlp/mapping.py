"""One LLM span → one trace (``source: "otlp"``), as the keyword arguments of :class:`~agnt_traces.models.Trace`.

Beyond what the dialect readers find (:mod:`.dialects`):

* id ``otel_<traceId>_<spanId>``: an exporter retrying a batch re-sends the same spans, and storing the
  same span again is a no-op, never a duplicate;
* ``createdAt`` and ``duration`` from the span's start and end times;
* status ``error`` from the span status (ERROR) or an ``exception`` event, with its type and message;
* ``metadata.otel``: ``traceId``, ``spanId``, ``parentSpanId``, ``name``, ``scope``, ``dialect`` and, when
  known, ``conversationId`` (also the trace's ``sessionId``, so ``list_traces(session_id=…)`` lists an
  agent run's calls in order) and ``truncated``;
* ``metadata.service`` and the tags ``service:<name>`` / ``env:<environment>`` from the resource;
* ``parentTraceId``: the nearest ancestor span of the same request that is itself an LLM call.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from ..ids import ms_to_rfc3339, new_id, now_ms
from ..models import PROMPT_NAME_RE
from .decode import Span
from .dialects import READERS, Call

__all__ = ["OTLP_ID_RE", "MappedSpan", "map_span", "otel_trace_id"]

OTLP_ID_RE = re.compile(r"^otel_[0-9a-f]{32}_[0-9a-f]{16}$")
MAX_TAGS = 32
MAX_ERROR_CHARS = 2_000
_VERSION_RE = re.compile(r"^(?P<name>[a-z0-9][a-z0-9._-]{0,127})(?:@|:v?)(?P<version>[0-9]{1,9})$")


def otel_trace_id(trace_id: str, span_id: str) -> str:
    return f"otel_{trace_id}_{span_id}"


class MappedSpan:
    """A span's trace (keyword arguments of ``Trace``), its digest, and the prompt name it claims."""

    __slots__ = ("digest", "fields", "prompt_claim")

    def __init__(self, fields: dict[str, Any], digest: bytes, prompt_claim: tuple[str, int | None] | None) -> None:
        self.fields = fields
        self.digest = digest
        self.prompt_claim = prompt_claim


def _error_of(span: Span, call: Call) -> dict[str, str] | None:
    for ev in span.events:
        if ev.name == "exception":
            etype = ev.attrs.get("exception.type")
            message = ev.attrs.get("exception.message")
            return {
                "type": (etype if isinstance(etype, str) and etype else "exception")[:200],
                "message": (message if isinstance(message, str) and message else span.status_message or "exception")[
                    :MAX_ERROR_CHARS
                ],
            }
    if span.status_code == 2:
        etype = span.attrs.get("error.type")
        return {
            "type": (etype if isinstance(etype, str) and etype else "error")[:200],
            "message": (span.status_message or "the span's status is ERROR (no message)")[:MAX_ERROR_CHARS],
        }
    if span.attrs.get("success") is False and span.name == "claude_code.llm_request":
        err = span.attrs.get("error")
        return {
            "type": "error",
            "message": (err if isinstance(err, str) and err else "request failed")[:MAX_ERROR_CHARS],
        }
    return None


def _service(resource: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    service: dict[str, Any] = {}
    tags: list[str] = []
    name = resource.get("service.name")
    if isinstance(name, str) and name:
        service["name"] = name[:128]
        tags.append(f"service:{name}"[:128])
    version = resource.get("service.version")
    if isinstance(version, str) and version:
        service["version"] = version[:128]
    env = resource.get("deployment.environment.name", resource.get("deployment.environment"))
    if isinstance(env, str) and env:
        service["environment"] = env[:128]
        tags.append(f"env:{env}"[:128])
    return service, tags


def _prompt_claim(call: Call) -> tuple[str, int | None] | None:
    """The hosted prompt an OpenInference template names: ``version`` "name@3" / "name:v3", or a
    ``name`` attribute with a numeric version."""
    tpl = call.prompt_template
    if not tpl:
        return None
    version = tpl.get("version")
    m = _VERSION_RE.match(version) if isinstance(version, str) else None
    if m is not None:
        return m.group("name"), int(m.group("version"))
    name = tpl.get("name")
    if isinstance(name, str) and PROMPT_NAME_RE.match(name):
        number = int(version) if isinstance(version, str) and version.isdigit() and len(version) <= 9 else None
        return name, number
    return None


def map_span(span: Span, parent_trace_id: str | None) -> MappedSpan:
    """The trace of an LLM span (the caller has checked :func:`~.dialects.is_llm_span`)."""
    call = Call()
    first = ""
    for read in READERS:
        read(span, call)
        first = first or call.reading
    created_ms = span.start_ns // 1_000_000 if span.start_ns else now_ms()
    duration = (span.end_ns - span.start_ns) / 1e9 if span.start_ns and span.end_ns >= span.start_ns else None
    if duration is not None and duration > 1e7:
        duration = None
    error = _error_of(span, call)
    service, tags = _service(span.resource)
    tags.extend(t[:128] for t in call.tags if t)
    otel: dict[str, Any] = {
        "traceId": span.trace_id,
        "spanId": span.span_id,
        "parentSpanId": span.parent_span_id or None,
        "name": span.name,
        "scope": span.scope or None,
        "dialect": call.dialect or first or "genai",
    }
    if call.conversation_id:
        otel["conversationId"] = call.conversation_id[:200]
    if span.truncated:
        otel["truncated"] = True
    if call.content.non_text:
        otel["nonTextContent"] = True
    if call.content.unparsed:
        otel["unparsedAttributes"] = sorted(set(call.content.unparsed))[:16]
    if call.output is None and not call.tool_calls and not call.output_seen:
        otel["outputCaptured"] = False
    metadata: dict[str, Any] = {"otel": otel}
    if service:
        metadata["service"] = service
    if call.usage:
        metadata["usage"] = call.usage
    if call.finish_reason:
        metadata["finishReason"] = call.finish_reason[:64]
    if call.app_metadata:
        metadata["app"] = call.app_metadata
    claim = _prompt_claim(call)
    if call.prompt_template:
        metadata["promptTemplate"] = {k: v for k, v in call.prompt_template.items() if v is not None}
    provider = call.provider or ""
    model = call.model or ""
    input_tokens = call.input_tokens or 0
    output_tokens = call.output_tokens or 0
    trace_id = otel_trace_id(span.trace_id, span.span_id) if span.trace_id and span.span_id else new_id(created_ms)
    fields: dict[str, Any] = {
        "id": trace_id,
        "created_at": ms_to_rfc3339(created_ms),
        "manifest": {
            "system": call.system or "",
            "tools": call.tools or [],
            "model": {"provider": provider, "name": model, "params": call.params} if model else {},
            "etag": None,
        },
        "variables": {},
        "messages": call.messages or [],
        "output": call.output,
        "tool_calls": call.tool_calls or [],
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": call.total_tokens if call.total_tokens is not None else input_tokens + output_tokens,
        "cost": call.cost,
        "duration": duration,
        "model": {"provider": provider, "name": model, "metadata": {}},
        "status": "error" if error else "success",
        "error": error,
        "tags": list(dict.fromkeys(tags))[:MAX_TAGS],
        "metadata": metadata,
        "source": "otlp",
        "session_id": call.conversation_id[:200] if call.conversation_id else None,
        "parent_trace_id": parent_trace_id,
    }
    # The same span always maps to the same fields, in the same order: their repr identifies the content
    # (a third of the cost of canonical JSON, on the hot path).
    digest = hashlib.sha256(repr(fields).encode()).digest()[:16]
    return MappedSpan(fields, digest, claim)


def parent_llm_ids(spans: list[Span], llm: set[str]) -> dict[str, str]:
    """span id → trace id of its nearest LLM ancestor in the same request (for LLM spans that have one)."""
    parent_of = {s.span_id: s.parent_span_id for s in spans if s.span_id}
    trace_of = {s.span_id: s.trace_id for s in spans if s.span_id}
    out: dict[str, str] = {}
    for span_id in llm:
        current = parent_of.get(span_id, "")
        for _ in range(64):  # bounded: a crafted parent cycle ends here
            if not current:
                break
            if current in llm:
                out[span_id] = otel_trace_id(trace_of[current], current)
                break
            current = parent_of.get(current, "")
    return out

"""Can the playground re-run a trace faithfully? The same rules for every source.

A trace is replayable when it holds what was sent (input messages with their content), what came back
(the output or tool calls, unless the call failed), and which model answered (provider and name), and
nothing of it was cut on the way in. Each problem is ``(kind, text)``: ``kind`` is ``content`` or
``model`` (a session clears ``model`` problems once its models are chosen with ``update_models``, and
``content`` problems once its blocks or variables are edited: the run is then the user's, not a replay).
"""

from __future__ import annotations

from typing import Any, Literal

from .models import Trace

__all__ = ["Problem", "replay_issues", "replay_problems"]

Problem = tuple[Literal["content", "model"], str]


def _otel(metadata: dict[str, Any]) -> dict[str, Any]:
    otel = metadata.get("otel")
    return otel if isinstance(otel, dict) else {}


def replay_problems(trace: Trace) -> list[Problem]:
    problems: list[Problem] = []
    otel = _otel(trace.metadata)
    if not trace.messages and not trace.manifest.system:
        problems.append(
            (
                "content",
                "no input messages: the call's prompt was not captured (turn on the instrumentation's content "
                "capture, e.g. OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true)",
            )
        )
    else:
        empty = [
            i
            for i, m in enumerate(trace.messages)
            if m.get("content") in (None, "") and not m.get("tool_calls") and m.get("role") != "assistant"
        ]
        if empty:
            shown = ", ".join(str(i) for i in empty[:5]) + ("…" if len(empty) > 5 else "")
            problems.append(("content", f"message(s) {shown} have no content: their text was not captured"))
    if trace.status == "success" and trace.output is None and not trace.tool_calls:
        problems.append(("content", "output not captured: the response to compare a re-run with is missing"))
    if otel.get("truncated"):
        problems.append(("content", "content truncated: some span attributes were cut at the server's size limit"))
    if otel.get("unparsedAttributes"):
        problems.append(
            (
                "content",
                f"unreadable JSON in {', '.join(map(str, otel['unparsedAttributes']))}: messages may be missing",
            )
        )
    if otel.get("nonTextContent"):
        problems.append(("content", "non-text content (images, audio, files) is replayed as text only"))
    if not trace.model.name:
        problems.append(("model", "model unknown: the span does not name the model; pick one with update_models"))
    elif not trace.model.provider:
        problems.append(("model", "provider unknown: the span does not name the provider; pick one with update_models"))
    return problems


def replay_issues(trace: Trace) -> list[str]:
    return [text for _, text in replay_problems(trace)]

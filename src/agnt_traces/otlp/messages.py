"""Chat messages from the shapes OTel instrumentations write, into the trace's OpenAI-style messages.

Shapes: the GenAI semantic conventions' "parts" messages (``{role, parts: [{type: text|tool_call|
tool_call_response|…}]}``), OpenAI-style messages (``{role, content, tool_calls}``), the Vercel AI SDK's
(``content`` as a list of ``text`` / ``tool-call`` / ``tool-result`` parts) and indexed attributes
(``prefix.{i}.rest``). Attribute strings holding JSON are parsed with the same limits as request bodies.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..errors import InvalidArgument
from ..jsonlimits import loads_checked

__all__ = [
    "MAX_MESSAGES",
    "Content",
    "indexed",
    "json_attr",
    "normalize_message",
    "num",
    "split_system",
    "text",
]

MAX_MESSAGES = 2_000
MAX_TOOL_CALLS = 128


class Content:
    """What a span's content conversion found missing or cut (becomes replay issues)."""

    __slots__ = ("non_text", "unparsed")

    def __init__(self) -> None:
        self.non_text = False  # images, audio, files: replayed as text only
        self.unparsed: list[str] = []  # attributes whose JSON could not be read


def json_attr(value: Any, key: str, seen: Content) -> Any:
    """An attribute that holds JSON (a string) or the structure itself (an OTLP array / kvlist)."""
    if value is None or isinstance(value, list | dict):
        return value
    if not isinstance(value, str):
        return None
    try:
        return loads_checked(value, key)
    except InvalidArgument:
        seen.unparsed.append(key)
        return None


def text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def num(value: Any) -> int | None:
    """A token count: an int, or a numeric string; None for anything else or out of range."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.isdigit() and len(value) <= 15:
        value = int(value)
    return value if isinstance(value, int) and 0 <= value <= 10**12 else None


def _args_text(args: Any) -> str:
    if isinstance(args, str):
        return args
    try:
        return json.dumps(args, ensure_ascii=False)
    except (TypeError, ValueError):
        return ""


def _tool_call(call_id: Any, name: Any, args: Any) -> dict[str, Any]:
    return {
        "id": call_id if isinstance(call_id, str) else "",
        "type": "function",
        "function": {"name": name if isinstance(name, str) else "", "arguments": _args_text(args)},
    }


def _from_parts(role: str, parts: list[Any], seen: Content) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    response: tuple[Any, Any] | None = None
    for part in parts[:MAX_MESSAGES]:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text" and isinstance(part.get("content"), str):
            texts.append(part["content"])
        elif kind == "tool_call" and len(calls) < MAX_TOOL_CALLS:
            calls.append(_tool_call(part.get("id"), part.get("name"), part.get("arguments")))
        elif kind == "tool_call_response":
            response = (part.get("id"), part.get("response", part.get("result")))
        elif kind in ("reasoning", "thinking"):
            continue  # the model's own reasoning is not part of what was sent
        else:
            seen.non_text = True
    if role == "tool" or response is not None:
        call_id, result = response if response is not None else (None, "\n".join(texts))
        return {
            "role": "tool",
            "tool_call_id": call_id if isinstance(call_id, str) else "",
            "content": result if isinstance(result, str) else _args_text(result),
        }
    message: dict[str, Any] = {"role": role, "content": "\n".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    return message


def _vercel_parts(role: str, parts: list[Any], seen: Content) -> dict[str, Any]:
    converted = []
    for part in parts:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text":
            converted.append({"type": "text", "content": part.get("text")})
        elif kind == "tool-call":
            converted.append(
                {
                    "type": "tool_call",
                    "id": part.get("toolCallId"),
                    "name": part.get("toolName"),
                    "arguments": part.get("input", part.get("args")),
                }
            )
        elif kind == "tool-result":
            output = part.get("output", part.get("result"))
            if isinstance(output, dict) and "value" in output:  # AI SDK 5: {type, value}
                output = output["value"]
            converted.append({"type": "tool_call_response", "id": part.get("toolCallId"), "response": output})
        elif kind in ("reasoning",):
            continue
        else:
            seen.non_text = True
    return _from_parts(role, converted, seen)


def normalize_message(raw: Any, seen: Content) -> dict[str, Any] | None:
    """One message in the trace's form, or None when ``raw`` is not a message."""
    if not isinstance(raw, dict):
        return None
    role = raw.get("role")
    role = role if isinstance(role, str) and role else "user"
    if isinstance(raw.get("parts"), list):
        return _from_parts(role, raw["parts"], seen)
    content = raw.get("content")
    if isinstance(content, list):
        if any(isinstance(p, dict) and p.get("type") in ("tool-call", "tool-result") for p in content):
            return _vercel_parts(role, content, seen)
        texts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif isinstance(part, dict) and isinstance(part.get("content"), str) and part.get("type") == "text":
                texts.append(part["content"])
            elif isinstance(part, str):
                texts.append(part)
            else:
                seen.non_text = True
        content = "\n".join(texts) if texts else None
    elif content is not None and not isinstance(content, str):
        content = _args_text(content)
    message: dict[str, Any] = {"role": role, "content": content}
    calls = raw.get("tool_calls")
    if isinstance(calls, list) and calls:
        message["tool_calls"] = [
            _tool_call(
                c.get("id"),
                (c.get("function") or {}).get("name", c.get("name")),
                (c.get("function") or {}).get("arguments", c.get("arguments")),
            )
            for c in calls[:MAX_TOOL_CALLS]
            if isinstance(c, dict) and isinstance(c.get("function") or {}, dict)
        ]
    if role == "tool" and isinstance(raw.get("tool_call_id", raw.get("id")), str):
        message["tool_call_id"] = raw.get("tool_call_id", raw.get("id"))
    return message


def normalize_messages(raw: Any, seen: Content) -> list[dict[str, Any]] | None:
    if not isinstance(raw, list):
        return None
    out = [m for m in (normalize_message(r, seen) for r in raw[:MAX_MESSAGES]) if m is not None]
    return out


def split_system(messages: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """The leading system messages (the trace keeps them in ``manifest.system``) and the rest."""
    system: list[str] = []
    i = 0
    while i < len(messages) and messages[i].get("role") in ("system", "developer"):
        content = messages[i].get("content")
        if isinstance(content, str):
            system.append(content)
        i += 1
    return "\n\n".join(system), messages[i:]


_NUMBERED = re.compile(r"\.([0-9]{1,6})\.")
_INDEX_CACHE: dict[int, tuple[dict[str, Any], dict[str, dict[int, dict[str, Any]]]]] = {}


def _index(attrs: dict[str, Any]) -> dict[str, dict[int, dict[str, Any]]]:
    """Every ``prefix.{i}.rest`` key of ``attrs``, grouped by prefix (with its dot) then ``i``: one pass.
    The last span's index is kept, so the readers of one span share it."""
    cached = _INDEX_CACHE.get(id(attrs))
    if cached is not None and cached[0] is attrs:
        return cached[1]
    out: dict[str, dict[int, dict[str, Any]]] = {}
    search = _NUMBERED.search
    for key, value in attrs.items():
        m = search(key)
        if m is not None:
            i = int(m.group(1))
            if i < MAX_MESSAGES:
                out.setdefault(key[: m.start() + 1], {}).setdefault(i, {})[key[m.end() :]] = value
    _INDEX_CACHE.clear()
    _INDEX_CACHE[id(attrs)] = (attrs, out)
    return out


def indexed(attrs: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    """``prefix.{i}.rest = value`` attributes as a list (by ``i``) of ``{rest: value}``.

    Only the first numeric segment of a key groups it: ``a.0.b.1.c`` is ``b.1.c`` of ``a.``'s item 0 (read
    nested lists by calling this on the item)."""
    if len(attrs) <= 8:  # a message's own keys: a direct scan is cheaper than an index
        groups: dict[int, dict[str, Any]] = {}
        plen = len(prefix)
        for key, value in attrs.items():
            if not key.startswith(prefix):
                continue
            index, dot, rest = key[plen:].partition(".")
            if dot and index.isdigit() and len(index) <= 6 and int(index) < MAX_MESSAGES:
                groups.setdefault(int(index), {})[rest] = value
        return [groups[i] for i in sorted(groups)]
    found = _index(attrs).get(prefix)
    return [found[i] for i in sorted(found)] if found else []

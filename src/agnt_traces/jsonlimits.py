"""Limits on the JSON that clients send, the same for REST bodies and MCP messages (HTTP and stdio).

Refused with ``invalid_argument``, naming the field:

- nesting deeper than ``MAX_JSON_DEPTH`` levels (the body or the tool's arguments object is level 1);
- a number that is not finite: ``NaN``, ``Infinity``, or one too large for a double (``1e400``);
- a string (or object key) holding a lone UTF-16 surrogate (``"\\ud800"``): it cannot be stored as UTF-8.
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass
from typing import Any

from .errors import InvalidArgument

__all__ = [
    "MAX_JSON_DEPTH",
    "RpcRejection",
    "check_value",
    "loads_checked",
    "may_hold_non_finite",
    "outside_limits",
    "plainly_within_limits",
    "recover_id",
    "rejection",
    "screen_rpc",
    "screen_rpc_line",
]

MAX_JSON_DEPTH = 64
_MAX_FLOAT = sys.float_info.max

_Path = tuple[Any, ...] | None  # a linked list (parent, key), built into text only on error


def _path_text(where: str, path: _Path) -> str:
    keys: list[Any] = []
    while path is not None:
        path, key = path
        keys.append(key)
    keys.reverse()
    if len(keys) > 12:  # a deep path: its start and its length say enough
        keys = [*keys[:6], f"…{len(keys) - 8} more…", *keys[-2:]]
    text = where
    for key in keys:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else str(key))
    return text or "body"


def _has_lone_surrogate(text: str) -> bool:
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def check_value(value: Any, where: str = "", max_depth: int = MAX_JSON_DEPTH) -> None:
    """Check a parsed JSON value against the limits above (iteratively: no recursion limit to hit).

    Raises:
        InvalidArgument: the first problem found, with ``details.field`` naming where it is.
    """
    stack: list[tuple[Any, int, _Path]] = [(value, 1, None)]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, dict):
            if depth > max_depth:
                raise _too_deep(_path_text(where, path), max_depth)
            for key, child in item.items():
                if isinstance(key, str) and _has_lone_surrogate(key):
                    raise _surrogate(_path_text(where, path) + " (a key)")
                stack.append((child, depth + 1, (path, key)))
        elif isinstance(item, list):
            if depth > max_depth:
                raise _too_deep(_path_text(where, path), max_depth)
            stack.extend((child, depth + 1, (path, i)) for i, child in enumerate(item))
        elif isinstance(item, float):
            if not math.isfinite(item):
                field = _path_text(where, path)
                raise InvalidArgument(
                    f"{field}: numbers must be finite (NaN, Infinity and values beyond ±1.8e308 such as 1e400 "
                    "are refused); send a finite number or null",
                    {"field": field},
                )
        elif isinstance(item, str) and _has_lone_surrogate(item):
            raise _surrogate(_path_text(where, path))


def outside_limits(value: Any, max_depth: int = MAX_JSON_DEPTH) -> bool:
    """True when a parsed value breaks the depth or finiteness limit (``value`` is level 1): what
    :func:`check_value` checks, answered yes or no by one walk over the containers, without naming the field.
    Strings are not looked at (a JSON parser that refuses lone surrogates has checked them already)."""
    level, depth = [value], 1
    while level:
        if depth > max_depth:
            return True
        below: list[Any] = []
        for item in level:
            for child in item.values() if type(item) is dict else item:
                kind = type(child)
                if kind is dict or kind is list:
                    below.append(child)
                elif kind is float and not -_MAX_FLOAT <= child <= _MAX_FLOAT:  # NaN compares False
                    return True
        level, depth = below, depth + 1
    return False


def _too_deep(field: str, max_depth: int) -> InvalidArgument:
    return InvalidArgument(
        f"{field}: JSON is nested deeper than {max_depth} levels (the limit); flatten the value",
        {"field": field, "maxDepth": max_depth},
    )


def _surrogate(field: str) -> InvalidArgument:
    return InvalidArgument(
        f"{field}: the string holds a lone UTF-16 surrogate (e.g. \\ud800 without its pair), which is not "
        "valid Unicode; send valid UTF-8 text",
        {"field": field},
    )


def loads_checked(raw: bytes | str, what: str = "request body") -> Any:
    """Parse strict JSON (no NaN/Infinity literals) and check it.

    Raises:
        InvalidArgument: not UTF-8, not JSON, or over a limit.
    """
    try:
        data = json.loads(raw)  # NaN / Infinity parse, then check_value refuses them naming the field
    except UnicodeDecodeError:
        raise InvalidArgument(f"{what} is not UTF-8 JSON") from None
    except RecursionError:
        raise _too_deep(what, MAX_JSON_DEPTH) from None
    except ValueError as exc:
        raise InvalidArgument(f"{what} is not valid JSON: {exc}") from None
    check_value(data)
    return data


# -- JSON-RPC messages at the MCP transports' edge ----------------------------------------------------------

# A lone surrogate escape, which the SDK's parser chokes on (as on nesting past 200 levels: a bare parse error).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
# A surrogate written as raw bytes (not valid UTF-8, but Python's json.loads decodes bytes with "surrogatepass").
_SURROGATE_BYTES = re.compile(rb"\xed[\xa0-\xbf]")
# Every digit and the decimal point read as 0, E as e, and plus signs dropped: the shapes of numbers, to look
# for with plain substring searches (a regular expression over the whole text costs 5-40 ns a byte).
_NUMBER_SHAPES = bytes.maketrans(b"0123456789.E", b"00000000000e")
_OVERFLOWING = (b"0e000", b"0" * 300, b"0" * 20 + b"e")
_ID_BEFORE_PARAMS = re.compile(rb'"id"\s*:\s*(-?[0-9]{1,18}|"(?:[^"\\]|\\.){0,200}")')

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INVALID_PARAMS = -32602


@dataclass(frozen=True, slots=True)
class RpcRejection:
    """A JSON-RPC message refused before it reaches the SDK, and the answer to send (None: a notification)."""

    error: InvalidArgument
    response: dict[str, Any] | None


def recover_id(raw: bytes) -> Any:
    """The request id of a message too broken to parse, if it is plainly there before ``params``."""
    head = raw[:4096]
    cut = head.find(b'"params"')
    match = _ID_BEFORE_PARAMS.search(head if cut < 0 else head[:cut])
    if match is None:
        return None
    try:
        return json.loads(match.group(1))
    except ValueError:
        return None


def rejection(msg_id: Any, method: str | None, err: InvalidArgument, *, code: int = INVALID_PARAMS) -> RpcRejection:
    payload = err.to_dict()
    if method == "tools/call" and msg_id is not None:
        result = {
            "content": [{"type": "text", "text": json.dumps(payload, ensure_ascii=False)}],
            "structuredContent": payload,
            "isError": True,
        }
        return RpcRejection(err, {"jsonrpc": "2.0", "id": msg_id, "result": result})
    if method is not None and msg_id is None:
        return RpcRejection(err, None)  # a notification gets no answer
    error = {"code": code, "message": err.message, "data": payload}
    return RpcRejection(err, {"jsonrpc": "2.0", "id": msg_id, "error": error})


def may_hold_non_finite(raw: bytes) -> bool:
    """True when a number in JSON text ``raw`` could parse as non-finite, or the text says NaN or Infinity
    anywhere (a string too). A number overflows a double only with an exponent of three digits or more,
    with 300 digits or more, or with 20 digits or more before an exponent (below that, 10^19 × 10^99 is
    finite). False is certain; True says only "check it"."""
    if b"NaN" in raw or b"Infinity" in raw:
        return True
    shapes = raw.translate(_NUMBER_SHAPES, b"+")
    return any(shape in shapes for shape in _OVERFLOWING)


def plainly_within_limits(raw: bytes) -> bool:
    """True when JSON text cannot break a limit above, by a quick look at its bytes: at most
    ``MAX_JSON_DEPTH`` brackets in all, and nothing that could be a non-finite number or a lone surrogate
    (escaped, or as raw bytes).
    False says only "check it" (``loads_checked``), not that it breaks one."""
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH or may_hold_non_finite(raw):
        return False
    if b"\xed" in raw and _SURROGATE_BYTES.search(raw) is not None:
        return False
    return b"\\u" not in raw or _SURROGATE_ESCAPE.search(raw) is None


def screen_rpc(raw: bytes) -> RpcRejection | None:
    """Check one JSON-RPC message (or batch) at a transport's edge; None if it may go on to the SDK.

    Cheap for ordinary messages: they are parsed only when they could hold a problem (the SDK answers a
    message that is not JSON itself).
    """
    if plainly_within_limits(raw):
        return None
    return screen_rpc_line(raw)[0]


def screen_rpc_line(raw: bytes) -> tuple[RpcRejection | None, Any]:
    """:func:`screen_rpc` for stdio, where the SDK drops a line it cannot parse without any answer: the line
    is always parsed. ``(None, the parsed message)`` if it may go on, else ``(the rejection, None)``."""
    plain = plainly_within_limits(raw)
    try:
        # UTF-8 only, as the SDK reads it (json.loads would also take UTF-16 and UTF-32, and surrogates).
        message = json.loads(raw.decode("utf-8"))
    except RecursionError:
        err = _too_deep("message", MAX_JSON_DEPTH)
        return rejection(recover_id(raw), None, err, code=INVALID_REQUEST), None
    except ValueError as exc:  # includes UnicodeDecodeError
        refused = rejection(
            recover_id(raw), None, InvalidArgument(f"the message is not valid JSON: {exc}"), code=PARSE_ERROR
        )
        return refused, None
    if plain:
        return None, message  # JSON, and nothing in it can break a limit: no need to walk it
    if not isinstance(message, dict):
        if isinstance(message, list):
            try:
                check_value(message, "message", MAX_JSON_DEPTH + 3)
            except InvalidArgument as err:
                return rejection(None, None, err, code=INVALID_REQUEST), None
        return None, message  # the SDK answers anything else that is not a message
    msg_id = message.get("id")
    method = message.get("method") if isinstance(message.get("method"), str) else None
    params = message.get("params")
    try:
        if method == "tools/call" and isinstance(params, dict) and isinstance(params.get("arguments"), dict):
            check_value(params["arguments"], "")
            check_value({k: v for k, v in message.items() if k != "params"}, "")
            check_value({k: v for k, v in params.items() if k != "arguments"}, "params", MAX_JSON_DEPTH)
        else:
            check_value(message, "", MAX_JSON_DEPTH + 2)
    except InvalidArgument as err:
        if msg_id is not None and not isinstance(msg_id, str | int):
            msg_id = None
        return rejection(msg_id, method, err), None
    return None, message

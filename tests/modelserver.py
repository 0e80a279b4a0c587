"""A real, deterministic model server for tests: OpenAI and Anthropic wire formats on 127.0.0.1.

It runs a stdlib ``ThreadingHTTPServer`` (HTTP/1.1 keep-alive, Nagle off) in a background thread, so
tests exercise the real LiteLLM → provider SDK → HTTP path with no mocks and no network.

Endpoints
    ``POST /v1/chat/completions``  OpenAI chat completions (point LiteLLM at ``server.openai_base``).
    ``POST /v1/messages``          Anthropic messages (point LiteLLM at ``server.anthropic_base``).
    Both answer plain JSON, or server-sent events when the body has ``"stream": true``. OpenAI streams
    end with a usage chunk when ``stream_options.include_usage`` is true, then ``data: [DONE]``.
    Anthropic streams send message_start, content_block_start, content_block_delta…,
    content_block_stop, message_delta (with usage), message_stop.

Deterministic answers
    * The output text is ``"echo: " + <text of the last user message>``, so a prompt change changes
      the output.
    * Tool calls: when the request has ``tools`` and the LAST message is a user message whose text
      contains ``CALL_TOOL``, the answer is one call to the first tool, with id
      ``call_<sha1(text)[:12]>`` (Anthropic: ``toolu_…``) and arguments ``{"input": <that text>}``;
      finish reason ``tool_calls`` / stop reason ``tool_use``; no text.
    * Tokens are words: ``input_tokens`` = number of whitespace-separated words in the system prompt
      plus every text part of every message (tool results included, tool definitions not);
      ``output_tokens`` = words of the output text, or for a tool call the words of
      ``name + " " + arguments``. Use :func:`count_words` / :func:`expected_usage` in assertions.
    * ``max_tokens`` (or ``max_completion_tokens``) below the output length truncates the output to
      that many words with finish reason ``length`` (Anthropic ``max_tokens``).
    * Response ids are ``chatcmpl-mock-<n>`` / ``msg_mock_<n>`` with n counting requests from 1.
    * Anthropic streams report ``output_tokens: 1`` in message_start and the true count in
      message_delta, as the real API does.

Scripted behaviours (consumed one per model request, FIFO; when the queue is empty: ``ok``)
    ``server.script(["429", "ok"])`` queues behaviours:
    ``ok``            normal answer
    ``NNN``           any 3-digit HTTP status with a provider-shaped JSON error body
                      (``429`` also sends ``retry-after: 0``; ``401`` echoes the API key it got,
                      like careless providers do, so tests can check scrubbing)
    ``NNN:SECONDS``   the same, with ``retry-after: SECONDS``
    ``slow:SECONDS``  wait, then answer normally (the wait ends early when the server stops)
    ``hang``          never answer; the connection is closed when the server stops
    ``close``         drop the connection without sending anything
    ``cut``           streaming: send the first content event, then drop the connection
                      (non-streaming: like ``close``)
    ``garbage``       200 with a body that is not JSON

Per-model behaviours (every request whose ``model`` contains the marker, before the queue)
    ``fail-NNN``      always answer status NNN, e.g. ``openai/mock-fail-500``
    ``always-hang``   always ``hang``;  ``always-close``: always ``close``
    ``slow-SECONDS``  always ``slow:SECONDS``, e.g. ``mock-slow-0.5``

Recording
    ``server.requests`` lists every request (:class:`Recorded`: method, path, lowercase headers,
    parsed JSON body, the behaviour applied). ``server.reset()`` clears the requests and the queue.
    ``server.expected_api_key``: when set, a request without that key (``Authorization: Bearer`` or
    ``x-api-key``) gets 401 whatever the script says. ``server.error_message``: when set, the message of
    every error body.

Fixture: ``model_server`` yields a started :class:`ModelServer` and stops it after the test.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

__all__ = [
    "ModelServer",
    "Recorded",
    "allow_endpoint",
    "count_words",
    "expected_usage",
    "model_server",
]

ECHO_PREFIX = "echo: "


# ---------------------------------------------------------------------------------------------------
# Deterministic content


def _text_of(content: Any) -> str:
    """All text in a message content (string, or a list of OpenAI/Anthropic parts), space-joined."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict):
                if isinstance(part.get("text"), str):
                    parts.append(part["text"])
                elif part.get("type") == "tool_result":
                    parts.append(_text_of(part.get("content")))
        return " ".join(p for p in parts if p)
    return str(content)


def count_words(text: str) -> int:
    return len(text.split())


def _system_text(body: dict[str, Any]) -> str:
    """The Anthropic top-level system prompt (string or text blocks)."""
    return _text_of(body.get("system"))


def _input_words(body: dict[str, Any]) -> int:
    total = count_words(_system_text(body))
    for msg in body.get("messages") or []:
        if isinstance(msg, dict):
            total += count_words(_text_of(msg.get("content")))
    return total


def _last_user_text(body: dict[str, Any]) -> str:
    for msg in reversed(body.get("messages") or []):
        if isinstance(msg, dict) and msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, list):  # skip tool results: only what the user typed
                content = [p for p in content if not (isinstance(p, dict) and p.get("type") == "tool_result")]
            return _text_of(content)
    return ""


def _wants_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    """The first tool's definition when the last message is a user message asking for CALL_TOOL."""
    tools = body.get("tools") or []
    messages = body.get("messages") or []
    if not tools or not messages or messages[-1].get("role") != "user":
        return None
    last = messages[-1].get("content")
    if isinstance(last, list) and any(isinstance(p, dict) and p.get("type") == "tool_result" for p in last):
        return None
    if "CALL_TOOL" not in _text_of(last):
        return None
    return tools[0]


@dataclass
class _Answer:
    text: str | None
    tool_name: str | None
    tool_id: str | None
    tool_args: str | None
    input_tokens: int
    output_tokens: int
    truncated: bool


def _answer(body: dict[str, Any], tool_id_prefix: str) -> _Answer:
    input_tokens = _input_words(body)
    tool = _wants_tool(body)
    user_text = _last_user_text(body)
    if tool is not None:
        name = (tool.get("function") or {}).get("name") or tool.get("name") or "tool"
        args = json.dumps({"input": user_text})
        digest = hashlib.sha1(user_text.encode()).hexdigest()[:12]
        return _Answer(
            None, name, f"{tool_id_prefix}{digest}", args, input_tokens, count_words(f"{name} {args}"), False
        )
    words = (ECHO_PREFIX + user_text).split()
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    truncated = isinstance(limit, int) and 0 < limit < len(words)
    if truncated:
        words = words[:limit]
    # Keep the text exact when not truncated (white space inside the user message matters).
    text = " ".join(words) if truncated else ECHO_PREFIX + user_text
    return _Answer(text, None, None, None, input_tokens, len(words), truncated)


def expected_usage(body: dict[str, Any]) -> tuple[int, int]:
    """(input_tokens, output_tokens) the server answers for this request body."""
    ans = _answer(body, "")
    return ans.input_tokens, ans.output_tokens


# ---------------------------------------------------------------------------------------------------
# Recording and behaviours


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    behaviour: str = "ok"

    @property
    def api_key(self) -> str | None:
        auth = self.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:]
        return self.headers.get("x-api-key")


_STATUS_RE = re.compile(r"^(\d{3})(?::(\d+(?:\.\d+)?))?$")
_FAIL_MODEL_RE = re.compile(r"fail-(\d{3})")
_SLOW_MODEL_RE = re.compile(r"slow-(\d+(?:\.\d+)?)")


def _model_behaviour(model: str) -> str | None:
    if m := _FAIL_MODEL_RE.search(model):
        return m.group(1)
    if "always-hang" in model:
        return "hang"
    if "always-close" in model:
        return "close"
    if m := _SLOW_MODEL_RE.search(model):
        return f"slow:{m.group(1)}"
    return None


_OPENAI_ERROR_TYPES = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("insufficient_permissions", "forbidden"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}
_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    queue: deque[str] = field(default_factory=deque)
    requests: list[Recorded] = field(default_factory=list)
    counter: int = 0
    expected_api_key: str | None = None
    usage_override: dict[str, Any] = field(default_factory=dict)
    error_message: str | None = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, owner: ModelServer) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # silence the default stderr log
        pass

    # -- plumbing ---------------------------------------------------------------------------------

    def _send_json(self, status: int, payload: Any, extra_headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra_headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _start_sse(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # -- dispatch ---------------------------------------------------------------------------------

    def do_GET(self) -> None:
        if self.path in ("/health", "/healthz"):
            self._send_json(200, {"status": "ok"})
        else:
            self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else {}
        except ValueError:
            body = raw.decode("utf-8", "replace")
        headers = {k.lower(): v for k, v in self.headers.items()}
        path = self.path.split("?", 1)[0]
        if path.endswith("/chat/completions"):
            kind = "openai"
        elif path.endswith("/messages"):
            kind = "anthropic"
        else:
            self._send_json(404, {"error": {"message": f"no route {path}", "type": "not_found"}})
            return
        owner = self.server.owner
        rec = Recorded("POST", path, headers, body)
        state = owner._state
        with state.lock:
            state.counter += 1
            n = state.counter
            model = str(body.get("model", "")) if isinstance(body, dict) else ""
            behaviour = _model_behaviour(model)
            if behaviour is None:
                behaviour = state.queue.popleft() if state.queue else "ok"
            if state.expected_api_key is not None and rec.api_key != state.expected_api_key:
                behaviour = "401"
            rec.behaviour = behaviour
            state.requests.append(rec)
        if not isinstance(body, dict):
            self._error(kind, 400, "request body is not JSON", rec)
            return
        self._behave(kind, behaviour, body, rec, n)

    def _behave(self, kind: str, behaviour: str, body: dict[str, Any], rec: Recorded, n: int) -> None:
        stop = self.server.owner._stop
        if behaviour == "ok":
            pass
        elif m := _STATUS_RE.match(behaviour):
            status = int(m.group(1))
            retry_after = m.group(2) if m.group(2) is not None else ("0" if status == 429 else None)
            self._error(kind, status, None, rec, retry_after)
            return
        elif behaviour.startswith("slow:"):
            if stop.wait(float(behaviour[5:])):
                self._drop()
                return
        elif behaviour == "hang":
            stop.wait()
            self._drop()
            return
        elif behaviour == "close":
            self._drop()
            return
        elif behaviour == "garbage":
            data = b"<html>this is not json"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        elif behaviour == "cut":
            if not body.get("stream"):
                self._drop()
                return
        else:
            raise ValueError(f"unknown model server behaviour {behaviour!r}")
        cut = behaviour == "cut"
        if kind == "openai":
            if body.get("stream"):
                self._openai_stream(body, n, cut)
            else:
                self._send_json(200, self._openai_json(body, n))
        elif body.get("stream"):
            self._anthropic_stream(body, n, cut)
        else:
            self._send_json(200, self._anthropic_json(body, n))

    def _error(
        self, kind: str, status: int, message: str | None, rec: Recorded, retry_after: str | None = None
    ) -> None:
        if message is None and self.server.owner._state.error_message is not None:
            message = self.server.owner._state.error_message
        if message is None:
            if status == 401:
                message = f"Incorrect API key provided: {rec.api_key}. You can find your API key in settings."
            elif status == 429:
                message = "Rate limit reached for requests. Please try again in 20ms."
            elif status >= 500:
                message = f"The server had an error while processing your request (mock {status})."
            else:
                message = f"Mock error {status}: the request was rejected."
        headers = {"retry-after": retry_after} if retry_after is not None else {}
        if kind == "openai":
            etype, code = _OPENAI_ERROR_TYPES.get(status, ("server_error", None))
            payload: dict[str, Any] = {"error": {"message": message, "type": etype, "param": None, "code": code}}
        else:
            etype = _ANTHROPIC_ERROR_TYPES.get(status, "api_error")
            payload = {"type": "error", "error": {"type": etype, "message": message}}
        self._send_json(status, payload, headers)

    # -- OpenAI -----------------------------------------------------------------------------------

    def _usage_override(self) -> dict[str, Any]:
        return dict(self.server.owner._state.usage_override)  # type: ignore[attr-defined]

    def _openai_json(self, body: dict[str, Any], n: int) -> dict[str, Any]:
        ans = _answer(body, "call_")
        message: dict[str, Any] = {"role": "assistant", "content": ans.text, "refusal": None}
        finish = "length" if ans.truncated else "stop"
        if ans.tool_name is not None:
            message["tool_calls"] = [
                {
                    "id": ans.tool_id,
                    "type": "function",
                    "function": {"name": ans.tool_name, "arguments": ans.tool_args},
                }
            ]
            finish = "tool_calls"
        return {
            "id": f"chatcmpl-mock-{n}",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": body.get("model", ""),
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": ans.input_tokens,
                "completion_tokens": ans.output_tokens,
                "total_tokens": ans.input_tokens + ans.output_tokens,
                **self._usage_override(),
            },
            "system_fingerprint": "fp_mock",
        }

    def _openai_stream(self, body: dict[str, Any], n: int, cut: bool) -> None:
        ans = _answer(body, "call_")
        base = {
            "id": f"chatcmpl-mock-{n}",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": body.get("model", ""),
            "system_fingerprint": "fp_mock",
        }
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def event(choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> None:
            chunk = dict(base, choices=choices)
            if include_usage:
                chunk["usage"] = usage
            self._chunk(b"data: " + json.dumps(chunk).encode() + b"\n\n")

        self._start_sse()
        event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        if ans.tool_name is not None:
            call = {
                "index": 0,
                "id": ans.tool_id,
                "type": "function",
                "function": {"name": ans.tool_name, "arguments": ""},
            }
            event([{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}])
            assert ans.tool_args is not None
            for piece in _pieces(ans.tool_args):
                delta = {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
                event([{"index": 0, "delta": delta, "finish_reason": None}])
                if cut:
                    self._drop()
                    return
            finish = "tool_calls"
        else:
            for piece in _pieces(ans.text or ""):
                event([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
                if cut:
                    self._drop()
                    return
            finish = "length" if ans.truncated else "stop"
        event([{"index": 0, "delta": {}, "finish_reason": finish}])
        if include_usage:
            usage = {
                "prompt_tokens": ans.input_tokens,
                "completion_tokens": ans.output_tokens,
                "total_tokens": ans.input_tokens + ans.output_tokens,
                **self._usage_override(),
            }
            event([], usage)
        self._chunk(b"data: [DONE]\n\n")
        self._end_chunks()

    # -- Anthropic --------------------------------------------------------------------------------

    def _anthropic_json(self, body: dict[str, Any], n: int) -> dict[str, Any]:
        ans = _answer(body, "toolu_")
        content: list[dict[str, Any]] = []
        stop = "max_tokens" if ans.truncated else "end_turn"
        if ans.tool_name is not None:
            assert ans.tool_args is not None
            content.append(
                {"type": "tool_use", "id": ans.tool_id, "name": ans.tool_name, "input": json.loads(ans.tool_args)}
            )
            stop = "tool_use"
        else:
            content.append({"type": "text", "text": ans.text})
        return {
            "id": f"msg_mock_{n}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", ""),
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": ans.input_tokens, "output_tokens": ans.output_tokens},
        }

    def _anthropic_stream(self, body: dict[str, Any], n: int, cut: bool) -> None:
        ans = _answer(body, "toolu_")

        def event(name: str, data: dict[str, Any]) -> None:
            data = {"type": name, **data}
            self._chunk(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())

        self._start_sse()
        message = {
            "id": f"msg_mock_{n}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", ""),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": ans.input_tokens, "output_tokens": 1},
        }
        event("message_start", {"message": message})
        if ans.tool_name is not None:
            block: dict[str, Any] = {"type": "tool_use", "id": ans.tool_id, "name": ans.tool_name, "input": {}}
            event("content_block_start", {"index": 0, "content_block": block})
            assert ans.tool_args is not None
            for piece in _pieces(ans.tool_args):
                event(
                    "content_block_delta",
                    {"index": 0, "delta": {"type": "input_json_delta", "partial_json": piece}},
                )
                if cut:
                    self._drop()
                    return
            stop = "tool_use"
        else:
            event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
            for piece in _pieces(ans.text or ""):
                event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": piece}})
                if cut:
                    self._drop()
                    return
            stop = "max_tokens" if ans.truncated else "end_turn"
        event("content_block_stop", {"index": 0})
        event(
            "message_delta",
            {"delta": {"stop_reason": stop, "stop_sequence": None}, "usage": {"output_tokens": ans.output_tokens}},
        )
        event("message_stop", {})
        self._end_chunks()


def _pieces(text: str) -> list[str]:
    """Split into stream deltas (words with their trailing white space) that concatenate back to text."""
    pieces = re.findall(r"\S+\s*|\s+", text)
    return pieces or [""]


# ---------------------------------------------------------------------------------------------------
# The server object


class ModelServer:
    """A started/stoppable local model server. See the module docstring for its behaviours."""

    def __init__(self) -> None:
        self._state = _State()
        self._stop = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # lifecycle

    def start(self) -> ModelServer:
        self._stop.clear()
        self._httpd = _Server(self)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="model-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket (its port then refuses connections)."""
        self._stop.set()  # releases "hang" and "slow" handlers
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # addresses

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base(self) -> str:
        """``api_base`` for ``openai/...`` models."""
        return f"{self.base_url}/v1"

    @property
    def anthropic_base(self) -> str:
        """``api_base`` for ``anthropic/...`` models (the SDK appends ``/v1/messages``)."""
        return self.base_url

    # scripting and recording

    def script(self, behaviours: Iterable[str]) -> None:
        """Queue behaviours, consumed one per model request (see the module docstring)."""
        items = list(behaviours)
        for b in items:
            if not (
                b in ("ok", "hang", "close", "cut", "garbage")
                or _STATUS_RE.match(b)
                or re.match(r"^slow:\d+(\.\d+)?$", b)
            ):
                raise ValueError(f"unknown model server behaviour {b!r}")
        with self._state.lock:
            self._state.queue.extend(items)

    @property
    def pending(self) -> list[str]:
        with self._state.lock:
            return list(self._state.queue)

    @property
    def requests(self) -> list[Recorded]:
        with self._state.lock:
            return list(self._state.requests)

    @property
    def error_message(self) -> str | None:
        """When set, the ``message`` of every error body (e.g. a marker that must never reach a client)."""
        return self._state.error_message

    @error_message.setter
    def error_message(self, value: str | None) -> None:
        self._state.error_message = value

    @property
    def expected_api_key(self) -> str | None:
        return self._state.expected_api_key

    @expected_api_key.setter
    def expected_api_key(self, value: str | None) -> None:
        self._state.expected_api_key = value

    @property
    def usage_override(self) -> dict[str, Any]:
        """Fields merged into every OpenAI ``usage`` object (JSON and stream), e.g. ``{"prompt_tokens": -5}``:
        a provider reporting absurd usage."""
        return self._state.usage_override

    @usage_override.setter
    def usage_override(self, value: dict[str, Any]) -> None:
        self._state.usage_override = dict(value)

    def reset(self) -> None:
        with self._state.lock:
            self._state.queue.clear()
            self._state.requests.clear()
            self._state.expected_api_key = None
            self._state.usage_override = {}

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[Recorded]:
        """Block until at least ``count`` requests arrived (for thread-side assertions)."""
        deadline = time.monotonic() + timeout
        while True:
            reqs = self.requests
            if len(reqs) >= count or time.monotonic() > deadline:
                return reqs
            time.sleep(0.005)


ENDPOINTS_ENV = "AGNT_TRACES_MODEL_ENDPOINTS"


def allow_endpoint(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """Add ``url`` to the operator's model endpoints (``AGNT_TRACES_MODEL_ENDPOINTS``) for this test: the
    server refuses any ``api_base`` that is not listed there. Subprocesses started later inherit it."""
    current = [e for e in os.environ.get(ENDPOINTS_ENV, "").split(",") if e.strip()]
    monkeypatch.setenv(ENDPOINTS_ENV, ",".join([*current, url]))


@pytest.fixture
def model_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModelServer]:
    """A started model server, allowed as a model endpoint (``openai_base`` and ``anthropic_base``) for
    the whole test."""
    server = ModelServer().start()
    allow_endpoint(monkeypatch, server.base_url)
    try:
        yield server
    finally:
        server.stop()

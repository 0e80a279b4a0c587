"""The MCP endpoint's edge, in front of the SDK's streamable-HTTP app.

- Sessions per tenant and per token are capped (``AGNT_TRACES_MCP_SESSIONS_PER_TENANT`` /
  ``…_PER_TOKEN``): one tenant opening sessions cannot use up the SDK's global cap (10 000) and lock
  every other tenant out. A session unused for ``AGNT_TRACES_MCP_SESSION_IDLE_SECONDS`` no longer
  counts (the SDK closes it at the same idle time). Requests of the stateless 2026-07-28 protocol open no
  session and are never refused by the cap.
- Messages the SDK would mis-handle are answered here (``jsonlimits.screen_rpc``): nesting over the limit,
  non-finite numbers, lone surrogates. A ``tools/call`` gets an ``is_error`` result with
  ``invalid_argument``; other requests a JSON-RPC -32602 error.
- With ``AGNT_TRACES_MCP_RESPONSES=auto`` (the default), a request in an open session that can receive
  nothing but its answer (it carries no ``progressToken``) is answered with one JSON body instead of an SSE
  stream: the MCP specification lets the server choose either, and a stream costs about 0.6 ms of server CPU
  a request (``server.sdk_seams.json_answer``). Requests that asked for progress get a stream.
- A request whose id is that of a request still in flight in the same session (``1`` and ``"1"`` count as
  the same: the SDK routes a session's messages by the id's text) is refused with -32600: it would take the
  other request's answer or progress as its own.
- The SDK's own HTTP errors (401, 403 Origin, 421 Host, 413, 400 Content-Type) become JSON-RPC error
  bodies whose ``message`` says what is wrong and whose ``data`` is the one error shape: MCP clients show a
  JSON-RPC error's message, and nothing of any other body.

Otherwise only public SDK behaviour is relied on: the ``Mcp-Session-Id`` and ``MCP-Protocol-Version`` headers, the
documented ``session_idle_timeout`` of the session manager, and the HTTP statuses it answers.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mcp.server.streamable_http import check_accept_headers
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import AgntError, InvalidArgument, TooManySessions, Unauthorized
from ..jsonlimits import INVALID_REQUEST, screen_rpc
from ..server.sdk_seams import json_answer
from ..tokens import hash_token
from .auth import TokenAuth, bearer_token
from .errors import too_large

__all__ = ["McpEdge", "SessionLimiter"]

logger = logging.getLogger("agnt_traces.http")

SESSION_HEADER = "mcp-session-id"
VERSION_HEADER = "mcp-protocol-version"
UNAUTHORIZED_CODE = -32001
TOO_MANY_SESSIONS_CODE = -32000
WWW_AUTHENTICATE = 'Bearer realm="agnt-traces"'


@dataclass(slots=True)
class _Session:
    tenant: str
    token: str
    in_flight: int = 0
    last_used: float = 0.0


@dataclass(slots=True)
class SessionLimiter:
    """Open MCP sessions by tenant and token; an opening request holds a place until it is answered."""

    per_tenant: int
    per_token: int
    idle_seconds: float
    clock: Callable[[], float] = time.monotonic
    _sessions: dict[str, _Session] = field(default_factory=dict)
    _by_tenant: dict[str, set[str]] = field(default_factory=dict)
    _by_token: dict[str, set[str]] = field(default_factory=dict)
    _opening_tenant: dict[str, int] = field(default_factory=dict)
    _opening_token: dict[str, int] = field(default_factory=dict)

    def _live(self, ids: set[str]) -> int:
        now = self.clock()
        for sid in list(ids):
            s = self._sessions.get(sid)
            if s is None or (s.in_flight == 0 and now - s.last_used >= self.idle_seconds):
                self.closed(sid)
        return len(ids)

    def open_count(self, tenant: str) -> int:
        return self._live(self._by_tenant.get(tenant, set()))

    def reserve(self, tenant: str, token: str) -> None:
        """Hold a place for a session about to open.

        Raises:
            TooManySessions: the tenant or the token is at its cap (counting other opening requests).
        """
        tenant_open = self._live(self._by_tenant.get(tenant, set())) + self._opening_tenant.get(tenant, 0)
        token_open = self._live(self._by_token.get(token, set())) + self._opening_token.get(token, 0)
        if tenant_open >= self.per_tenant:
            raise self._refusal(f"tenant {tenant!r} has {tenant_open} open MCP sessions", self.per_tenant, "TENANT")
        if token_open >= self.per_token:
            raise self._refusal(f"this token has {token_open} open MCP sessions", self.per_token, "TOKEN")
        self._opening_tenant[tenant] = self._opening_tenant.get(tenant, 0) + 1
        self._opening_token[token] = self._opening_token.get(token, 0) + 1

    def _refusal(self, what: str, limit: int, scope: str) -> TooManySessions:
        return TooManySessions(
            f"{what}, the limit (AGNT_TRACES_MCP_SESSIONS_PER_{scope}={limit}): close sessions you no longer "
            f"use (DELETE /mcp with their Mcp-Session-Id; SDK clients do it on exit) or wait for idle ones to "
            f"expire ({self.idle_seconds:g} s without a request)",
            {"limit": limit, "idleSeconds": self.idle_seconds},
        )

    def release(self, tenant: str, token: str) -> None:
        for counts, key in ((self._opening_tenant, tenant), (self._opening_token, token)):
            left = counts.get(key, 0) - 1
            if left > 0:
                counts[key] = left
            else:
                counts.pop(key, None)

    def opened(self, sid: str, tenant: str, token: str) -> None:
        self._sessions[sid] = _Session(tenant, token, 0, self.clock())
        self._by_tenant.setdefault(tenant, set()).add(sid)
        self._by_token.setdefault(token, set()).add(sid)

    def begin(self, sid: str) -> bool:
        """A request on session ``sid`` starts; False if the session is not (or no longer) counted."""
        s = self._sessions.get(sid)
        if s is None:
            return False
        s.in_flight += 1
        return True

    def end(self, sid: str) -> None:
        s = self._sessions.get(sid)
        if s is not None:
            s.in_flight = max(0, s.in_flight - 1)
            s.last_used = self.clock()

    def closed(self, sid: str) -> None:
        s = self._sessions.pop(sid, None)
        if s is None:
            return
        for index, key in ((self._by_tenant, s.tenant), (self._by_token, s.token)):
            ids = index.get(key)
            if ids is not None:
                ids.discard(sid)
                if not ids:
                    del index[key]


def _jsonrpc_error(status: int, code: int, err: AgntError, msg_id: Any = None) -> tuple[int, bytes]:
    body = {"jsonrpc": "2.0", "id": msg_id, "error": {"code": code, "message": err.message, "data": err.to_dict()}}
    return status, json.dumps(body, ensure_ascii=False).encode()


async def _send_json(send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _answer_only(message: Any, scope: Scope) -> bool:
    """True when the POSTed message can receive nothing but its answer: it asks for no progress, and the
    client accepts both kinds of answer as the SDK reads Accept (one that does not is refused by the SDK as in
    stream mode)."""
    has_json, has_sse = check_accept_headers(Request(scope))
    if not (has_json and has_sse):
        return False
    params = message.get("params") if isinstance(message, dict) else None
    meta = params.get("_meta") if isinstance(params, dict) else None
    return not (isinstance(meta, dict) and "progressToken" in meta)


class _TooLarge(Exception):
    pass


class McpEdge:
    """ASGI wrapper around the SDK's MCP app (see the module docstring)."""

    _RESHAPED = frozenset({400, 401, 403, 413, 421})

    def __init__(
        self, app: ASGIApp, *, auth: TokenAuth, limiter: SessionLimiter, limit: int, per_request: bool = False
    ) -> None:
        self.app = app
        self.auth = auth
        self.limiter = limiter
        self.limit = limit
        self.per_request = per_request  # JSON answers for requests that can receive nothing else
        # The ids of the requests in flight, by session: the SDK routes a session's messages by str(id), so a
        # second request with the same id would take the first one's answer (or progress) as its own.
        self._request_ids: dict[tuple[str, str], set[str]] = {}

    async def _caller(self, header: str | None) -> tuple[str, str] | None:
        """(tenant, token key) of a valid bearer token; None lets the SDK answer 401."""
        try:
            token = bearer_token(header)
        except Unauthorized:
            return None
        tenant = await self.auth.tenant_for(token)
        return None if tenant is None else (tenant, hash_token(token).hex())

    async def _read_body(self, receive: Receive) -> tuple[bytes, list[Message]]:
        chunks: list[bytes] = []
        size = 0
        trailing: list[Message] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                trailing.append(message)
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks), trailing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        caller = await self._caller(headers.get("authorization"))
        send = self._shaping(headers, send)
        if caller is None:
            await self.app(scope, receive, send)  # the SDK answers 401 (reshaped)
            return
        tenant, token = caller
        body: bytes | None = None
        if scope["method"] == "POST":
            declared = headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.limit:
                await send({"type": "http.response.start", "status": 413, "headers": []})
                await send({"type": "http.response.body", "body": b""})
                return
            try:
                body, trailing = await self._read_body(receive)
            except _TooLarge:
                await send({"type": "http.response.start", "status": 413, "headers": []})
                await send({"type": "http.response.body", "body": b""})
                return
            refused = screen_rpc(body)
            if refused is not None:
                await self._refuse(send, refused.response, refused.error)
                return
            receive = _replay(body, trailing, receive)
        session_id = headers.get(SESSION_HEADER)
        if session_id is not None:
            message = _parsed(body) if body is not None else None
            # A request's id (a response to a request of the server carries the server's id: not counted).
            msg_id = message.get("id") if isinstance(message, dict) and "method" in message else None
            if not isinstance(msg_id, str | int) or isinstance(msg_id, bool):
                msg_id = None
            key = None if msg_id is None else str(msg_id)  # how the SDK tells a session's requests apart
            in_flight = self._request_ids.setdefault((session_id, token), set())
            if key is not None and key in in_flight:
                err = InvalidArgument(
                    f"a request with id {key!r} is still in flight in this session: give each request its own id "
                    '(1 and "1" count as the same)',
                    {"field": "id"},
                )
                await _send_json(send, *_jsonrpc_error(400, INVALID_REQUEST, err, msg_id))
                return
            if key is not None:
                in_flight.add(key)
            try:
                if self.per_request and message is not None and _answer_only(message, scope):
                    with json_answer():
                        await self._in_session(session_id, tenant, token, scope, receive, send)
                else:
                    await self._in_session(session_id, tenant, token, scope, receive, send)
            finally:
                if key is not None:
                    in_flight.discard(key)
                if not in_flight:
                    self._request_ids.pop((session_id, token), None)
            return
        version = headers.get(VERSION_HEADER)
        could_open = scope["method"] == "POST" and (version is None or version in HANDSHAKE_PROTOCOL_VERSIONS)
        if not could_open:
            await self.app(scope, receive, send)
            return
        try:
            self.limiter.reserve(tenant, token)
        except TooManySessions as err:
            if body is not None and _method_of(body) == "initialize":
                logger.warning("refused an MCP session to tenant %s: %s", tenant, err.message)
                status, payload = _jsonrpc_error(429, TOO_MANY_SESSIONS_CODE, err, _id_of(body))
                await _send_json(send, status, payload, [(b"retry-after", b"30")])
                return
            await self.app(scope, receive, send)  # not an opening request: the SDK answers it
            return
        opened: list[str] = []
        try:
            await self.app(scope, receive, _watch_new_session(send, opened))
        finally:
            self.limiter.release(tenant, token)
            if opened:
                self.limiter.opened(opened[0], tenant, token)

    async def _in_session(
        self, session_id: str, tenant: str, token: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        counted = self.limiter.begin(session_id)
        status: list[int] = []

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            if counted:
                self.limiter.end(session_id)
            code = status[0] if status else None
            if code == 404 or (scope["method"] == "DELETE" and code is not None and code < 300):
                self.limiter.closed(session_id)  # expired or ended
            elif not counted and code is not None and code < 400:
                self.limiter.opened(session_id, tenant, token)  # still open in the SDK: count it again

    async def _refuse(self, send: Send, response: dict[str, Any] | None, err: InvalidArgument) -> None:
        if response is None:
            status, body = _jsonrpc_error(400, INVALID_REQUEST, err)
        elif "result" in response:
            status, body = 200, json.dumps(response, ensure_ascii=False).encode()
        else:
            status, body = 400, json.dumps(response, ensure_ascii=False).encode()
        await _send_json(send, status, body)

    def _shaping(self, headers: Headers, send: Send) -> Send:
        """Turn the SDK's plain HTTP errors into JSON-RPC errors that say what is wrong."""
        held: dict[str, Any] = {}

        async def shaped(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] in self._RESHAPED:
                content_type = Headers(raw=message.get("headers", [])).get("content-type", "")
                if message["status"] != 400 or not content_type.startswith("application/json"):
                    held["start"] = message
                    held["body"] = b""
                    return
            if "start" in held and message["type"] == "http.response.body":
                held["body"] += message.get("body", b"")
                if message.get("more_body", False):
                    return
                await self._send_reshaped(send, held["start"], held["body"], headers)
                held.clear()
                held["done"] = True
                return
            if "done" in held:
                return
            await send(message)

        return shaped

    async def _send_reshaped(self, send: Send, start: Message, body: bytes, headers: Headers) -> None:
        status = start["status"]
        kept = [(k, v) for k, v in start.get("headers", []) if k.lower() == b"www-authenticate"]
        code = INVALID_REQUEST
        err: AgntError
        if status == 401:
            code = UNAUTHORIZED_CODE
            err = Unauthorized(
                "missing, invalid or revoked bearer token: send 'Authorization: Bearer <token>' "
                "(agnt-traces token create --tenant T)"
            )
            if not kept:
                kept = [(b"www-authenticate", WWW_AUTHENTICATE.encode())]
        elif status == 413:
            err = too_large(self.limit)
        elif status == 403 and b"origin" in body.lower():
            origin = headers.get("origin", "")
            err = InvalidArgument(
                f"Origin {origin!r} is not allowed on the MCP endpoint: a server bound to a loopback address "
                "accepts browser requests only from loopback origins (http://127.0.0.1:*, http://localhost:*, "
                "http://[::1]:*), against DNS rebinding; non-browser clients should send no Origin header",
                {"field": "Origin"},
            )
        elif status == 421:
            host = headers.get("host", "")
            err = InvalidArgument(
                f"Host {host!r} is not allowed on the MCP endpoint: a server bound to a loopback address answers "
                "only Host 127.0.0.1:PORT, localhost:PORT or [::1]:PORT, against DNS rebinding",
                {"field": "Host"},
            )
        elif status == 400 and b"content-type" in body.lower():
            err = InvalidArgument("POST /mcp needs 'Content-Type: application/json'", {"field": "Content-Type"})
        else:
            text = body.decode("utf-8", "replace")[:200]
            err = InvalidArgument(f"the MCP request was refused: {text}")
            if status == 403:
                err = Unauthorized("this token is not allowed to use the MCP endpoint")
        status_out, payload = _jsonrpc_error(status, code, err)
        await _send_json(send, status_out, payload, kept)


def _replay(body: bytes, trailing: list[Message], receive: Receive) -> Receive:
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}, *trailing]

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


def _watch_new_session(send: Send, opened: list[str]) -> Send:
    async def watch(message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] < 400:
            sid = Headers(raw=message.get("headers", [])).get(SESSION_HEADER)
            if sid:
                opened.append(sid)
        await send(message)

    return watch


def _parsed(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def _method_of(body: bytes) -> str | None:
    message = _parsed(body)
    return message.get("method") if isinstance(message, dict) else None


def _id_of(body: bytes) -> Any:
    message = _parsed(body)
    msg_id = message.get("id") if isinstance(message, dict) else None
    return msg_id if isinstance(msg_id, str | int) else None

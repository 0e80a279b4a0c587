"""The one place that reaches into private attributes of the MCP SDK (pinned: mcp==2.3.0).

Six needs have no public way in 2.3.0:

- serving our own bounded stdio streams needs the low-level server (below);
- a paginated ``resources/list`` needs a request handler on the low-level server (``MCPServer`` answers
  every list in one page);
- refusing unknown tool arguments by name needs the registered tools' argument models (``_tool_manager``);
- answering a streamable-HTTP request with one JSON body or an SSE stream, chosen per request (below);
- skipping the SDK's span per message while nothing records spans (below): the middleware list is public, but
  the SDK's ``OpenTelemetryMiddleware`` lives in a private module (``mcp.server._otel``);
- finding the bearer token without decoding every header of every request (below): the SDK's streamable-HTTP
  app takes no authentication backend of ours, so :func:`one_header_bearer` swaps the one it built.

``MCPServer.run_stdio_async`` always serves the process's own stdin/stdout through the SDK's reader, which
reads lines of any length (unbounded memory) on a worker thread that Ctrl-C cannot interrupt. The SDK's
``stdio_server(stdin=..., stdout=...)`` is public and takes our own streams, but serving them needs the
low-level server, which ``MCPServer`` keeps in ``_lowlevel_server`` with no public accessor.

The MCP specification lets a server answer each request POST with either an SSE stream or one JSON body.
The SDK's transport chooses once, for the whole server (``json_response``), reading its
``is_json_response_enabled`` attribute at each step of a request; its session manager builds every session's
transport from the module-level name ``StreamableHTTPServerTransport``. :func:`install_per_request_answers`
puts a subclass there whose attribute is a property: the server's setting, unless the request being handled
runs inside :func:`json_answer`. A stream costs the server a task group, four tasks and two memory streams a
request (about 0.6 ms); the MCP edge asks for JSON only for a request that can receive nothing but its answer
(no ``progressToken``: this server sends no other message related to a request).

The span middleware starts a span, attaches a context and sets a dozen attributes for every message, about
3 % of the CPU of an MCP call, even though with no tracer provider in the process every span is a no-op.
:func:`spans_when_traced` wraps it so that it runs only while a provider is set; it is asked at every message,
so a provider set after the server was built (an application's lifespan) gets its spans from then on.

The SDK's ``BearerAuthBackend`` finds the ``Authorization`` header by decoding the name of every header of
the request and looking each one up again (``conn.headers``): about 5 % of the CPU of an MCP call over HTTP.
:class:`OneHeaderBearerBackend` is that backend, handed a view of the request holding only the first
``Authorization`` header, found in the raw ASGI headers (whose names ASGI servers give in lower case); the
SDK's code does all the rest (the token check, expiry, resource) as before.

tests/http/test_edges.py::test_sdk_seam_matches_the_pinned_sdk and tests/http/test_mcp_responses.py fail
loudly when the pinned version changes behaviour.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from mcp.server import streamable_http_manager
from mcp.server._otel import OpenTelemetryMiddleware
from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend
from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http import StreamableHTTPServerTransport
from opentelemetry import trace
from starlette.applications import Starlette
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection

__all__ = [
    "PINNED_MCP_VERSION",
    "OneHeaderBearerBackend",
    "PerRequestAnswerTransport",
    "SpansWhenTraced",
    "install_per_request_answers",
    "json_answer",
    "lowlevel_server",
    "one_header_bearer",
    "registered_tools",
    "spans_when_traced",
]

PINNED_MCP_VERSION = "2.3.0"


def lowlevel_server(server: MCPServer[Any]) -> Any:
    """The ``mcp.server.lowlevel.Server`` behind an ``MCPServer`` (``run(read, write, init_options)``)."""
    return server._lowlevel_server


def registered_tools(server: MCPServer[Any]) -> list[Any]:
    """The ``Tool`` objects registered on an ``MCPServer`` (each with ``fn_metadata.arg_model`` and
    ``parameters``, the published input schema)."""
    return list(server._tool_manager.list_tools())


_JSON_ANSWER: ContextVar[bool | None] = ContextVar("agnt_traces_json_answer", default=None)


class PerRequestAnswerTransport(StreamableHTTPServerTransport):
    """The SDK's streamable-HTTP transport, answering in JSON while :func:`json_answer` is on."""

    @property
    def is_json_response_enabled(self) -> bool:
        chosen = _JSON_ANSWER.get()
        if chosen is None:
            return bool(self.__dict__["_json_by_setting"])
        return chosen

    @is_json_response_enabled.setter
    def is_json_response_enabled(self, value: bool) -> None:
        self.__dict__["_json_by_setting"] = value


def install_per_request_answers() -> None:
    """Make the session manager build :class:`PerRequestAnswerTransport` (idempotent). Outside
    :func:`json_answer` it behaves as the SDK's transport: nothing else in the process sees a change."""
    streamable_http_manager.StreamableHTTPServerTransport = PerRequestAnswerTransport  # type: ignore[misc]


@contextlib.contextmanager
def json_answer() -> Iterator[None]:
    """The request handled inside is answered with one JSON body (the session must be open already: a
    session's own task inherits the context of the request that opens it)."""
    token = _JSON_ANSWER.set(True)
    try:
        yield
    finally:
        _JSON_ANSWER.reset(token)


def _traced() -> bool:
    """Something in this process records spans: a tracer provider is set (``opentelemetry-instrument``,
    ``OTEL_PYTHON_TRACER_PROVIDER``, an application that embeds the server), now or since start-up."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider)


class SpansWhenTraced:
    """The SDK's span-per-message middleware, run only while a tracer provider is set (asked at every message,
    so a provider set after the server was built is used from then on); otherwise the message goes straight on."""

    def __init__(self, spans: OpenTelemetryMiddleware) -> None:
        self.spans = spans

    async def __call__(self, ctx: Any, call_next: Any) -> Any:
        if _traced():
            return await self.spans(ctx, call_next)
        return await call_next(ctx)


def spans_when_traced(server: MCPServer[Any]) -> int:
    """Wrap the SDK's span middleware of ``server`` in :class:`SpansWhenTraced`, in place; how many were."""
    chain = server.middleware
    wrapped = 0
    for i, middleware in enumerate(chain):
        if isinstance(middleware, OpenTelemetryMiddleware):
            chain[i] = SpansWhenTraced(middleware)
            wrapped += 1
    return wrapped


class _AuthorizationOnly:
    """What ``BearerAuthBackend.authenticate`` reads of a request (``headers``), holding only the first
    ``Authorization`` header."""

    __slots__ = ("headers",)

    def __init__(self, conn: HTTPConnection) -> None:
        self.headers: dict[str, str] = {}
        for name, value in conn.scope["headers"]:
            if name == b"authorization":
                self.headers["authorization"] = value.decode("latin-1")
                break


class OneHeaderBearerBackend(BearerAuthBackend):
    """The SDK's bearer-token backend, without decoding every header to find one."""

    async def authenticate(self, conn: HTTPConnection) -> Any:
        return await super().authenticate(_AuthorizationOnly(conn))  # type: ignore[arg-type]


def one_header_bearer(app: Starlette) -> bool:
    """Make the SDK's streamable-HTTP ``app`` (before its first request) authenticate with
    :class:`OneHeaderBearerBackend`; True when its bearer backend was found and swapped."""
    for middleware in app.user_middleware:
        backend = middleware.kwargs.get("backend")
        if middleware.cls is AuthenticationMiddleware and type(backend) is BearerAuthBackend:
            swapped = OneHeaderBearerBackend(backend.token_verifier, resource_server_url=backend.resource_server_url)
            middleware.kwargs["backend"] = swapped
            return True
    return False

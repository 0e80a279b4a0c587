"""``agnt-traces serve --http``: REST under ``/api/v1`` and MCP (streamable HTTP) at ``/mcp`` in one process.

Both front ends share one ``App`` (one store, one set of services), opened in the server's lifespan, and
the same bearer tokens: REST checks them itself, MCP through the SDK's ``TokenVerifier`` — both with the
same lookup and cache.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .. import __version__
from ..app import App, open_app
from ..config import Settings
from ..dburls import describe_url
from ..errors import InvalidArgument
from ..eventloop import asyncio_owned
from ..gcpolicy import serving, settle
from ..logs import log_failure
from ..server.sdk_seams import install_per_request_answers, one_header_bearer
from .auth import DEFAULT_TOKEN_TTL, McpTokenVerifier, TokenAuth
from .errors import BodyLimitMiddleware, http_exception_handler, unexpected_error_handler
from .inflight import InFlight, InFlightMiddleware
from .mcp_edge import McpEdge, SessionLimiter
from .openapi import API_PREFIX, openapi_document
from .otlp import OTLP_PATH, OtlpEndpoint
from .routes import Runtime, build_api_routes

__all__ = ["build_http_app", "serve_http"]

logger = logging.getLogger("agnt_traces.http")

MCP_PATH = "/mcp"
SHUTDOWN_GRACE = 2.0


def _local_url(host: str, port: int) -> str:
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _public_url(host: str, port: int) -> str:
    """The server's URL as clients see it: ``AGNT_TRACES_PUBLIC_URL`` (behind a proxy) or the bound address."""
    return (os.environ.get("AGNT_TRACES_PUBLIC_URL") or _local_url(host, port)).rstrip("/")


def _mcp_server(settings: Settings, rt: Runtime, verifier: McpTokenVerifier, public_url: str) -> MCPServer[App]:
    from ..server.mcp import build_server

    # Bearer tokens of our own (agnt-traces token create), and no OAuth authorization server: advertise
    # none. Without resource_server_url the SDK serves no protected-resource metadata and its 401 names no
    # metadata URL, so OAuth-aware clients do not start a flow that cannot work. issuer_url is required by
    # AuthSettings but published nowhere when there is neither a resource URL nor an auth server provider.
    auth = AuthSettings(
        issuer_url=public_url,  # type: ignore[arg-type]  # pydantic coerces the string
        resource_server_url=None,
        validate_token_resource=False,  # our verifier binds tokens to this server's database itself
    )
    # One App for REST and MCP: the one the HTTP lifespan opened.
    server = build_server(settings, shared_app=lambda: rt.app, token_verifier=verifier, auth=auth)
    return server


async def _close_model_clients() -> None:
    if "agnt_traces.llm" in sys.modules:  # only if a model was ever called: never import LiteLLM here
        from ..llm import aclose

        await aclose()


def _machine_paths_in_json(web: ASGIApp) -> ASGIApp:
    """The web page takes every path the routes above do not, except the machine ones: a request under
    ``/api/`` or for OTLP that no route took (an unknown path, another method) is answered in the one JSON
    error shape (404, or 405 naming the methods), not with an HTML page."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http":
            if path == OTLP_PATH:
                raise HTTPException(405, headers={"allow": "POST"})
            if path == API_PREFIX or path.startswith(API_PREFIX + "/") or path.startswith("/api/"):
                raise HTTPException(404)
        await web(scope, receive, send)

    return app


def build_http_app(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8787,
    public_url: str | None = None,
    token_ttl: float = DEFAULT_TOKEN_TTL,
) -> Starlette:
    """The ASGI app: ``/healthz``, ``/api/v1/openapi.json`` (both public), the REST API and ``/mcp``.

    ``host`` decides the MCP endpoint's DNS-rebinding protection (on for loopback hosts); ``public_url``
    (default ``AGNT_TRACES_PUBLIC_URL`` or ``http://host:port``) is what the OAuth metadata names.
    """
    public = (public_url or _public_url(host, port)).rstrip("/")
    rt = Runtime(TokenAuth(lambda: rt.app.tokens, ttl=token_ttl))
    mcp = _mcp_server(settings, rt, McpTokenVerifier(rt.auth), public)
    install_per_request_answers()  # JSON or SSE per request (AGNT_TRACES_MCP_RESPONSES=auto, see McpEdge)
    limiter = SessionLimiter(
        per_tenant=settings.mcp_sessions_per_tenant,
        per_token=settings.mcp_sessions_per_token,
        idle_seconds=settings.mcp_session_idle_seconds,
    )
    sdk_app = mcp.streamable_http_app(
        streamable_http_path=MCP_PATH,
        json_response=settings.mcp_responses == "json",
        host=host,
        max_request_body_size=settings.max_body_bytes,
        session_idle_timeout=settings.mcp_session_idle_seconds,
    )
    one_header_bearer(sdk_app)  # the bearer token found without decoding every header (see sdk_seams)
    mcp_app = McpEdge(
        sdk_app,
        auth=rt.auth,
        limiter=limiter,
        limit=settings.max_body_bytes,
        per_request=settings.mcp_responses == "auto",
    )

    async def otlp_tenant(request: Request) -> str:
        return await rt.auth.authenticate(request.headers.get("authorization"))

    otlp_endpoint = OtlpEndpoint(lambda: rt.app.traces, otlp_tenant, settings.otlp_limits())

    async def otlp(request: Request) -> Response:
        return await otlp_endpoint(request)

    openapi_cache: dict[str, Any] = {}
    inflight = InFlight()

    async def healthz(request: Request) -> Response:
        try:
            reason = await rt.app.health()  # the file is there, the disk takes writes, a read answers
        except Exception:
            log_failure(logger, "health check failed")
            reason = "the database does not answer; the server log has the details"
        if reason is not None:
            body = {"status": "error", "reason": reason, "version": __version__}
            return JSONResponse(body, status_code=503, headers={"cache-control": "no-store"})
        return JSONResponse({"status": "ok", "version": __version__}, headers={"cache-control": "no-store"})

    async def openapi(request: Request) -> Response:
        if "doc" not in openapi_cache:
            openapi_cache["doc"] = openapi_document(public)
        return JSONResponse(openapi_cache["doc"])

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with open_app(settings) as app:
            rt.app = app
            try:
                async with mcp.session_manager.run():
                    yield
            finally:
                await app.traces.aclose()  # single-trace writes still grouped are committed
                rt.app = None
                await _close_model_clients()

    from ..web import build_web_app

    routes: list[Route | Mount] = [
        Route("/healthz", healthz, methods=["GET"], name="healthz"),
        Route(API_PREFIX + "/openapi.json", openapi, methods=["GET"], name="openapi"),
        Mount(API_PREFIX, routes=build_api_routes(rt), name="api"),
        Route(MCP_PATH, mcp_app, name="mcp"),
        Route(OTLP_PATH, otlp, methods=["POST"], name="otlp"),
        # The web page last: every path the routes above do not take (sign in with a token; SPEC §5).
        Mount("/", app=_machine_paths_in_json(build_web_app(lambda: rt.app)), name="web"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(InFlightMiddleware, tracker=inflight),
            # The MCP and OTLP endpoints bound their own bodies (OTLP answers in the request's encoding).
            Middleware(BodyLimitMiddleware, limit=settings.max_body_bytes, skip=(MCP_PATH, OTLP_PATH)),
        ],
        exception_handlers={HTTPException: http_exception_handler, Exception: unexpected_error_handler},
        lifespan=lifespan,
    )
    app.state.runtime = rt
    app.state.mcp = mcp
    app.state.mcp_sessions = limiter
    app.state.inflight = inflight
    return app


def _listen(host: str, port: int) -> socket.socket:
    """Bind before building the app, so that ``--port 0`` still gives the real URL everywhere."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY on accepted connections only when the
    # socket says it is TCP. Without it every response (headers and body are two writes) waits ~40 ms for
    # the client's delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InvalidArgument(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port or --host"
        ) from None
    return sock


def run_server(
    app: Starlette,
    sock: socket.socket,
    ready_line: str,
    *,
    drain: InFlight | None = None,
    graceful_seconds: int = 3,
) -> None:
    """Serve ``app`` with uvicorn on ``sock`` until interrupted (``serve --http``, ``ui``, ``collect``).

    One ``ready_line`` goes to stderr once it listens. uvicorn logs at ``AGNT_TRACES_LOG_LEVEL`` (default
    WARNING: no line per request unless asked for). With ``drain``, requests still running after
    SHUTDOWN_GRACE (a slow model call, an open MCP stream) are ended by us, cleanly, before uvicorn's own
    later timeout would cancel them with an ERROR.
    """
    import uvicorn

    serving()
    level = os.environ.get("AGNT_TRACES_LOG_LEVEL", "warning").lower()

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: Any = None) -> None:
            if drain is None:
                await super().shutdown(sockets)
                return
            async with anyio.create_task_group() as tg:
                tg.start_soon(drain.drain, SHUTDOWN_GRACE)
                await super().shutdown(sockets)

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started:
                settle()  # start-up's objects are kept for life: later collections skip them (gcpolicy)
                print(ready_line, file=sys.stderr, flush=True)

    config = uvicorn.Config(
        app,
        log_level=level,
        access_log=level in ("debug", "trace", "info"),
        proxy_headers=False,
        server_header=False,
        lifespan="on",
        timeout_graceful_shutdown=graceful_seconds,
    )
    try:
        with asyncio_owned():
            Server(config).run(sockets=[sock])
    finally:
        sock.close()


def serve_http(settings: Settings, host: str = "127.0.0.1", port: int = 8787) -> None:
    """Run the HTTP server until interrupted; a startup line with the URL goes to stderr."""
    sock = _listen(host, port)
    port = sock.getsockname()[1]
    url = _local_url(host, port)
    app = build_http_app(settings, host=host, port=port)
    run_server(
        app,
        sock,
        f"agnt-traces {__version__}: serving on {url} — web page {url}/, REST {url}{API_PREFIX}, "
        f"MCP {url}{MCP_PATH}, health {url}/healthz (db: {describe_url(settings.db_path)})",
        drain=app.state.inflight,
        # A backstop only: the drain ends what still runs after SHUTDOWN_GRACE (see InFlight).
        graceful_seconds=int(SHUTDOWN_GRACE) + 3,
    )

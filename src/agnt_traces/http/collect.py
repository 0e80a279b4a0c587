"""``agnt-traces collect``: the OTLP endpoint for one person — loopback only, no token, one tenant.

An app on the same machine exports its spans to ``http://127.0.0.1:4318/v1/traces`` (the OTLP/HTTP
default port); the traces land in the SQLite file the stdio server reads, so the agent sees them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import __version__
from ..app import App, open_app
from ..config import Settings
from ..services.traces import TraceService
from .errors import http_exception_handler, unexpected_error_handler
from .otlp import OTLP_PATH, OtlpEndpoint

__all__ = ["COLLECT_HOST", "DEFAULT_COLLECT_PORT", "build_collect_app", "serve_collect"]

COLLECT_HOST = "127.0.0.1"
DEFAULT_COLLECT_PORT = 4318


def build_collect_app(settings: Settings) -> Starlette:
    """``POST /v1/traces`` (into ``settings.tenant``, no token) and ``GET /healthz``."""
    state: dict[str, App] = {}

    def traces() -> TraceService:
        return state["app"].traces

    async def tenant_of(request: Request) -> str:
        return settings.tenant

    endpoint = OtlpEndpoint(traces, tenant_of, settings.otlp_limits())

    async def otlp(request: Request) -> Response:
        return await endpoint(request)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__}, headers={"cache-control": "no-store"})

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with open_app(settings) as app:
            state["app"] = app
            yield

    return Starlette(
        routes=[
            Route(OTLP_PATH, otlp, methods=["POST"], name="otlp"),
            Route("/healthz", healthz, methods=["GET"], name="healthz"),
        ],
        exception_handlers={HTTPException: http_exception_handler, Exception: unexpected_error_handler},
        lifespan=lifespan,
    )


def serve_collect(settings: Settings, port: int = DEFAULT_COLLECT_PORT) -> None:
    """Serve until interrupted, on 127.0.0.1 only; a line with the endpoint goes to stderr."""
    from ..dburls import describe_url
    from .app import _listen, _local_url, run_server

    sock = _listen(COLLECT_HOST, port)
    url = _local_url(COLLECT_HOST, sock.getsockname()[1])
    run_server(
        build_collect_app(settings),
        sock,
        f"agnt-traces {__version__}: collecting OTLP traces on {url}{OTLP_PATH} for tenant "
        f"{settings.tenant!r} (db: {describe_url(settings.db_path)}); set OTEL_EXPORTER_OTLP_ENDPOINT={url}",
    )

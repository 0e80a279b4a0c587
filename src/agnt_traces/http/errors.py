"""The one error shape over HTTP, the request body limit, and strict JSON bodies."""

from __future__ import annotations

import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import AgntError, InternalError, InvalidArgument, NotFound, PayloadTooLarge, Unauthorized
from ..jsonlimits import loads_checked

__all__ = [
    "BodyLimitMiddleware",
    "error_response",
    "http_exception_handler",
    "json_body",
    "json_object",
    "not_found",
    "too_large",
    "unexpected_error_handler",
]

logger = logging.getLogger("agnt_traces.http")

NO_STORE = {"cache-control": "no-store"}
WWW_AUTHENTICATE = 'Bearer realm="agnt-traces"'


def error_response(err: AgntError) -> JSONResponse:
    headers = dict(NO_STORE)
    if isinstance(err, Unauthorized):
        headers["www-authenticate"] = WWW_AUTHENTICATE
    return JSONResponse(err.to_dict(), status_code=err.http_status, headers=headers)


def not_found(request: Request) -> NotFound:
    """The same answer for a path that does not exist and for another tenant's path: no hint either way."""
    return NotFound(
        f"no such resource: {request.method} {request.url.path}; check the path "
        "(a token sees only its own tenant; /api/v1/openapi.json lists the routes)"
    )


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    """Starlette's own 404 / 405 (unknown path or method) in the one shape."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(not_found(request))
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        err = InvalidArgument(
            f"method {request.method} is not allowed on {request.url.path} (allowed: {allowed or 'none'})",
            {"allowed": [m.strip() for m in allowed.split(",") if m.strip()]},
        )
        response = JSONResponse(err.to_dict(), status_code=405, headers={**NO_STORE, "allow": allowed})
        return response
    err2 = InvalidArgument(str(exc.detail)) if exc.status_code < 500 else InternalError("internal error")
    return JSONResponse(err2.to_dict(), status_code=exc.status_code, headers=NO_STORE)


async def unexpected_error_handler(request: Request, exc: Exception) -> Response:
    logger.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(InternalError("internal error; the server log has the details"))


async def json_body(request: Request, *, required: bool = True) -> dict[str, Any]:
    """The request body as a JSON object (an empty body is ``{}`` unless ``required``).

    Raises:
        InvalidArgument: not JSON, not an object, or over a limit of ``jsonlimits`` (nesting deeper
            than 64 levels, a non-finite number, a lone surrogate), naming the field.
        PayloadTooLarge: from the body limit, while reading.
    """
    return json_object(await request.body(), required=required)


def json_object(raw: bytes, *, required: bool = True) -> dict[str, Any]:
    """A request body's bytes as a JSON object: see :func:`json_body`.

    Raises:
        InvalidArgument: as :func:`json_body`.
    """
    if not raw.strip():
        if required:
            raise InvalidArgument("request body is empty: send a JSON object (Content-Type: application/json)")
        return {}
    data = loads_checked(raw)
    if not isinstance(data, dict):
        raise InvalidArgument(f"request body must be a JSON object, not {type(data).__name__}")
    return data


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"request body is larger than {limit} bytes: split it (e.g. smaller trace batches) "
        "or raise AGNT_TRACES_MAX_BODY_BYTES",
        {"limit": limit},
    )


class BodyLimitMiddleware:
    """413 for a body over the limit: by ``Content-Length`` before reading, and by counting streamed bytes
    (chunked bodies, or a lying header) while reading. Paths in ``skip`` (the MCP endpoint, which has its
    own limit) pass through."""

    def __init__(self, app: ASGIApp, limit: int, skip: tuple[str, ...] = ()) -> None:
        self.app = app
        self.limit = limit
        self.skip = skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.skip):
            await self.app(scope, receive, send)
            return
        limit = self.limit
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await error_response(InvalidArgument("Content-Length is not a number"))(scope, receive, send)
                    return
                if declared > limit:
                    await error_response(too_large(limit))(scope, receive, send)
                    return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise too_large(limit)  # the route turns it into a 413 in the one shape
            return message

        await self.app(scope, counting_receive, send)

"""``POST /v1/traces``: OTLP/HTTP trace export, on ``serve --http`` (bearer token → tenant) and on
``agnt-traces collect`` (one tenant, loopback, no token).

The answer follows OTLP/HTTP: 200 with an ``ExportTraceServiceResponse`` (``partial_success`` counts the
refused spans and says why), 400 for a body that cannot be decoded, 401, 413 (body over the limit —
on the wire or once decompressed — or too many spans), 415 (another content type or encoding), 503 when
the database cannot take writes (exporters retry). Answers are in the request's encoding: protobuf
(errors as ``google.rpc.Status``) or JSON (errors in this server's one error shape). The traces are
committed before the answer is sent.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from ..errors import AgntError, InternalError, InvalidArgument, PayloadTooLarge, Unauthorized
from ..logs import log_failure
from ..otlp.decode import OtlpLimits, body_too_large, decode_body, gunzip_bounded
from ..otlp.ingest import IngestSummary, ingest_spans, summary_headers
from ..services.traces import TraceService
from .errors import NO_STORE, WWW_AUTHENTICATE

__all__ = ["OTLP_PATH", "OtlpEndpoint"]

logger = logging.getLogger("agnt_traces.http")

OTLP_PATH = "/v1/traces"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"

# google.rpc.Code of each HTTP status (the Status message's ``code``).
_RPC_CODE = {400: 3, 401: 16, 404: 5, 409: 10, 413: 8, 415: 3, 500: 13, 503: 14, 507: 8}


class UnsupportedMediaType(InvalidArgument):
    http_status = 415


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def rpc_status(code: int, message: str) -> bytes:
    """A ``google.rpc.Status`` message (fields 1: code, 2: message) without the googleapis package."""
    text = message.encode()
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


def _error_response(err: AgntError, encoding: str | None) -> Response:
    status = err.http_status
    headers = dict(NO_STORE)
    if isinstance(err, Unauthorized):
        headers["www-authenticate"] = WWW_AUTHENTICATE
    if status == 503:
        headers["retry-after"] = "2"
    if encoding == PROTOBUF:
        body = rpc_status(_RPC_CODE.get(status, 2), err.message)
        return Response(body, status_code=status, media_type=PROTOBUF, headers=headers)
    return JSONResponse(err.to_dict(), status_code=status, headers=headers)


def _success(summary: IngestSummary, encoding: str) -> Response:
    headers = {**NO_STORE, **summary_headers(summary)}
    message = summary.error_message()
    if encoding == PROTOBUF:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

        response = ExportTraceServiceResponse()
        if summary.rejected:
            response.partial_success.rejected_spans = summary.rejected
            response.partial_success.error_message = message
        return Response(response.SerializeToString(), media_type=PROTOBUF, headers=headers)
    body: dict[str, Any] = {}
    if summary.rejected:
        body["partialSuccess"] = {"rejectedSpans": str(summary.rejected), "errorMessage": message}
    return JSONResponse(body, headers=headers)


def _media_type(request: Request) -> str | None:
    value = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return value if value in (PROTOBUF, JSON) else None


async def _read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused (413) as soon as it passes ``limit``: by Content-Length, else while reading."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise InvalidArgument("Content-Length is not a number")
        if int(declared) > limit:
            raise body_too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise body_too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


class OtlpEndpoint:
    """The ASGI endpoint; ``tenant_of`` authorises a request (``serve --http``: its bearer token)."""

    def __init__(
        self,
        traces: Callable[[], TraceService],
        tenant_of: Callable[[Request], Awaitable[str]],
        limits: OtlpLimits,
    ) -> None:
        self.traces = traces
        self.tenant_of = tenant_of
        self.limits = limits

    async def __call__(self, request: Request) -> Response:
        encoding = _media_type(request)
        try:
            tenant = await self.tenant_of(request)
            if encoding is None:
                raise UnsupportedMediaType(
                    "Content-Type must be application/x-protobuf or application/json (OTLP/HTTP); "
                    "set OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/protobuf or http/json"
                )
            content_encoding = request.headers.get("content-encoding", "identity").strip().lower()
            if content_encoding not in ("gzip", "identity", ""):
                raise UnsupportedMediaType(
                    f"Content-Encoding {content_encoding[:40]!r} is not supported: send gzip or no compression"
                )
            raw = await _read_body(request, self.limits.max_body_bytes)
            if content_encoding == "gzip":
                raw = gunzip_bounded(raw, self.limits.max_body_bytes)
            spans = decode_body(raw, encoding, self.limits)
            del raw
            summary = await ingest_spans(self.traces(), tenant, spans)
        except ClientDisconnect:
            return Response(status_code=400)
        except (InvalidArgument, Unauthorized, PayloadTooLarge) as err:
            return _error_response(err, encoding)
        except AgntError as err:
            if err.http_status >= 500:
                logger.error("OTLP export refused: %s", err.message)
            return _error_response(err, encoding)
        except Exception:
            log_failure(logger, "OTLP export failed")
            return _error_response(InternalError("internal error; the server log has the details"), encoding)
        return _success(summary, encoding)

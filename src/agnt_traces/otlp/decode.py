"""OTLP/HTTP request bodies → plain spans, with every attacker-controlled size bounded.

Two wire forms (``application/x-protobuf``, ``application/json``), optionally gzip-compressed. The
result is a list of :class:`Span` with attribute values converted to Python values: strings (cut at
``limits.max_attr_chars``, the span marked ``truncated``), numbers, booleans, lists (at most
``MAX_ARRAY`` items) and dicts (``kvlist``, at most ``MAX_KV_DEPTH`` levels). Ids are lower-case hex, as
OTLP/JSON writes them.

Raises (every function here):
    InvalidArgument: an undecodable body, naming what is wrong (HTTP 400).
    PayloadTooLarge: a body, once decompressed, over the limit, or more spans than allowed (HTTP 413).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidArgument, PayloadTooLarge
from ..jsonlimits import loads_checked

__all__ = ["OtlpLimits", "Span", "SpanEvent", "decode_body", "gunzip_bounded"]

MAX_ARRAY = 1000
MAX_KV_DEPTH = 8
MAX_ATTRIBUTES = 4096  # per span (OpenInference writes a few per message)
MAX_EVENTS = 512  # per span
MAX_NAME_CHARS = 256


@dataclass(frozen=True, slots=True)
class OtlpLimits:
    max_body_bytes: int = 8_000_000  # on the wire AND once decompressed
    max_spans: int = 5_000
    max_attr_chars: int = 256_000


@dataclass(slots=True)
class SpanEvent:
    name: str
    time_ns: int
    attrs: dict[str, Any]


@dataclass(slots=True)
class Span:
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    start_ns: int
    end_ns: int
    attrs: dict[str, Any]
    events: list[SpanEvent]
    status_code: int  # 0 unset, 1 ok, 2 error
    status_message: str
    resource: dict[str, Any]
    scope: str = ""
    truncated: bool = False
    notes: list[str] = field(default_factory=list)


class _Cut:
    """Per-span conversion state: the string limit, and whether anything was cut."""

    __slots__ = ("max_chars", "truncated")

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self.truncated = False

    def text(self, value: str) -> str:
        if len(value) > self.max_chars:
            self.truncated = True
            return value[: self.max_chars]
        return value


def too_many_spans(count: int, limits: OtlpLimits) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the request holds {count} spans; at most {limits.max_spans} are taken per request: lower the "
        f"exporter's batch size (OTEL_BSP_MAX_EXPORT_BATCH_SIZE) or raise AGNT_TRACES_OTLP_MAX_SPANS",
        {"limit": limits.max_spans, "spans": count},
    )


def body_too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the request body is larger than {limit} bytes (decompressed): send smaller batches "
        "(OTEL_BSP_MAX_EXPORT_BATCH_SIZE) or raise AGNT_TRACES_OTLP_MAX_BODY_BYTES",
        {"limit": limit},
    )


def gunzip_bounded(data: bytes, limit: int) -> bytes:
    """Decompress a gzip body without ever holding more than ``limit`` + 1 bytes of output.

    Raises:
        PayloadTooLarge: the decompressed body is over ``limit``.
        InvalidArgument: not gzip data.
    """
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error:
        raise InvalidArgument("the body is not valid gzip data (Content-Encoding: gzip)") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise body_too_large(limit)
    if not inflater.eof:
        raise InvalidArgument("the gzip body is truncated (Content-Encoding: gzip)")
    return out


def decode_body(raw: bytes, content_type: str, limits: OtlpLimits) -> list[Span]:
    """The spans of an ``ExportTraceServiceRequest`` in either encoding."""
    if content_type == "application/x-protobuf":
        return _decode_protobuf(raw, limits)
    return _decode_json(raw, limits)


# -- protobuf -----------------------------------------------------------------------------------------------


def _pb_value(value: Any, cut: _Cut, depth: int = 0) -> Any:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return cut.text(value.string_value)
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        d = value.double_value
        return d if d == d and d not in (float("inf"), float("-inf")) else None
    if kind == "bool_value":
        return value.bool_value
    if depth >= MAX_KV_DEPTH:
        cut.truncated = True
        return None
    if kind == "array_value":
        items = value.array_value.values
        if len(items) > MAX_ARRAY:
            cut.truncated = True
        return [_pb_value(v, cut, depth + 1) for v in items[:MAX_ARRAY]]
    if kind == "kvlist_value":
        kvs = value.kvlist_value.values
        if len(kvs) > MAX_ARRAY:
            cut.truncated = True
        return {kv.key[:MAX_NAME_CHARS]: _pb_value(kv.value, cut, depth + 1) for kv in kvs[:MAX_ARRAY]}
    return None  # bytes_value and empty values carry nothing we map


def _pb_attrs(attrs: Any, cut: _Cut) -> dict[str, Any]:
    if len(attrs) > MAX_ATTRIBUTES:
        cut.truncated = True
        attrs = attrs[:MAX_ATTRIBUTES]
    out: dict[str, Any] = {}
    limit = cut.max_chars
    for kv in attrs:
        value = kv.value
        kind = value.WhichOneof("value")
        if kind == "string_value":  # the common case, inline
            text = value.string_value
            if len(text) > limit:
                cut.truncated = True
                text = text[:limit]
            out[kv.key[:MAX_NAME_CHARS]] = text
        elif kind == "int_value":
            out[kv.key[:MAX_NAME_CHARS]] = value.int_value
        else:
            out[kv.key[:MAX_NAME_CHARS]] = _pb_value(value, cut)
    return out


def _decode_protobuf(raw: bytes, limits: OtlpLimits) -> list[Span]:
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    try:
        request = ExportTraceServiceRequest.FromString(raw)
    except (DecodeError, RecursionError, ValueError):
        raise InvalidArgument(
            "the body is not a protobuf ExportTraceServiceRequest (Content-Type: application/x-protobuf)"
        ) from None
    count = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    if count > limits.max_spans:
        raise too_many_spans(count, limits)
    spans: list[Span] = []
    for rs in request.resource_spans:
        rcut = _Cut(limits.max_attr_chars)
        resource = _pb_attrs(rs.resource.attributes, rcut)
        for ss in rs.scope_spans:
            scope = ss.scope.name[:MAX_NAME_CHARS]
            for sp in ss.spans:
                cut = _Cut(limits.max_attr_chars)
                events = [
                    SpanEvent(ev.name[:MAX_NAME_CHARS], ev.time_unix_nano, _pb_attrs(ev.attributes, cut))
                    for ev in sp.events[:MAX_EVENTS]
                ]
                spans.append(
                    Span(
                        trace_id=sp.trace_id.hex(),
                        span_id=sp.span_id.hex(),
                        parent_span_id=sp.parent_span_id.hex(),
                        name=sp.name[:MAX_NAME_CHARS],
                        start_ns=sp.start_time_unix_nano,
                        end_ns=sp.end_time_unix_nano,
                        attrs=_pb_attrs(sp.attributes, cut),
                        events=events,
                        status_code=sp.status.code,
                        status_message=cut.text(sp.status.message),
                        resource=resource,
                        scope=scope,
                        truncated=cut.truncated or len(sp.events) > MAX_EVENTS,
                    )
                )
    return spans


# -- JSON -----------------------------------------------------------------------------------------------------


def _get(obj: dict[str, Any], camel: str, snake: str) -> Any:
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _list(obj: Any, camel: str, snake: str, where: str) -> list[Any]:
    value = _get(obj, camel, snake) if isinstance(obj, dict) else None
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidArgument(f"{where}.{camel} must be an array (OTLP/JSON)", {"field": f"{where}.{camel}"})
    return value


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidArgument(f"{where} must be an object (OTLP/JSON)", {"field": where})
    return value


def _int(value: Any, where: str) -> int:
    """int64 fields: OTLP/JSON sends them as decimal strings or numbers."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | str) or (isinstance(value, str) and len(value) > 20):
        raise InvalidArgument(f"{where} must be an integer or a decimal string", {"field": where})
    try:
        number = int(value)
    except ValueError:
        raise InvalidArgument(f"{where} must be an integer or a decimal string", {"field": where}) from None
    if not 0 <= number < 2**64:
        raise InvalidArgument(f"{where} is out of range", {"field": where})
    return number


def _hex_id(value: Any, size: int, where: str) -> str:
    if value in (None, ""):
        return ""
    if not isinstance(value, str) or len(value) != size * 2:
        raise InvalidArgument(
            f"{where} must be {size * 2} hex digits (OTLP/JSON encodes ids as hex, not base64)", {"field": where}
        )
    try:
        bytes.fromhex(value)
    except ValueError:
        raise InvalidArgument(f"{where} must be {size * 2} hex digits", {"field": where}) from None
    return value.lower()


def _json_value(value: Any, cut: _Cut, where: str, depth: int = 0) -> Any:
    if not isinstance(value, dict):
        return None
    if "stringValue" in value or "string_value" in value:
        text = _get(value, "stringValue", "string_value")
        return cut.text(text) if isinstance(text, str) else None
    if "intValue" in value or "int_value" in value:
        raw = _get(value, "intValue", "int_value")
        try:
            return (
                int(raw) if isinstance(raw, int | str) and not isinstance(raw, bool) and len(str(raw)) <= 20 else None
            )
        except ValueError:
            return None
    if "doubleValue" in value or "double_value" in value:
        raw = _get(value, "doubleValue", "double_value")
        return float(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) else None
    if "boolValue" in value or "bool_value" in value:
        raw = _get(value, "boolValue", "bool_value")
        return raw if isinstance(raw, bool) else None
    if depth >= MAX_KV_DEPTH:
        cut.truncated = True
        return None
    if "arrayValue" in value or "array_value" in value:
        items = _list(_get(value, "arrayValue", "array_value"), "values", "values", where)
        if len(items) > MAX_ARRAY:
            cut.truncated = True
        return [_json_value(v, cut, where, depth + 1) for v in items[:MAX_ARRAY]]
    if "kvlistValue" in value or "kvlist_value" in value:
        kvs = _list(_get(value, "kvlistValue", "kvlist_value"), "values", "values", where)
        if len(kvs) > MAX_ARRAY:
            cut.truncated = True
        out: dict[str, Any] = {}
        for kv in kvs[:MAX_ARRAY]:
            if isinstance(kv, dict) and isinstance(kv.get("key"), str):
                out[kv["key"][:MAX_NAME_CHARS]] = _json_value(kv.get("value"), cut, where, depth + 1)
        return out
    return None


def _json_attrs(items: list[Any], cut: _Cut, where: str) -> dict[str, Any]:
    if len(items) > MAX_ATTRIBUTES:
        cut.truncated = True
        items = items[:MAX_ATTRIBUTES]
    out: dict[str, Any] = {}
    for i, kv in enumerate(items):
        if not isinstance(kv, dict) or not isinstance(kv.get("key"), str):
            raise InvalidArgument(f"{where}[{i}] must be an object with a string key", {"field": f"{where}[{i}]"})
        out[kv["key"][:MAX_NAME_CHARS]] = _json_value(kv.get("value"), cut, f"{where}[{i}]")
    return out


def _text(value: Any) -> str:
    return value[:MAX_NAME_CHARS] if isinstance(value, str) else ""


def _decode_json(raw: bytes, limits: OtlpLimits) -> list[Span]:
    data = _obj(loads_checked(raw, "OTLP/JSON body"), "body")
    resource_spans = _list(data, "resourceSpans", "resource_spans", "body")
    count = 0
    for i, rs in enumerate(resource_spans):
        for j, ss in enumerate(
            _list(_obj(rs, f"resourceSpans[{i}]"), "scopeSpans", "scope_spans", f"resourceSpans[{i}]")
        ):
            count += len(_list(_obj(ss, f"resourceSpans[{i}].scopeSpans[{j}]"), "spans", "spans", "scopeSpans"))
    if count > limits.max_spans:
        raise too_many_spans(count, limits)
    spans: list[Span] = []
    for i, rs in enumerate(resource_spans):
        where_r = f"resourceSpans[{i}]"
        rcut = _Cut(limits.max_attr_chars)
        res_obj = rs.get("resource") or {}
        resource = _json_attrs(
            _list(_obj(res_obj, f"{where_r}.resource"), "attributes", "attributes", where_r),
            rcut,
            f"{where_r}.resource.attributes",
        )
        for j, ss in enumerate(_list(rs, "scopeSpans", "scope_spans", where_r)):
            scope_obj = ss.get("scope")
            scope = _text(scope_obj.get("name")) if isinstance(scope_obj, dict) else ""
            for k, sp in enumerate(_list(ss, "spans", "spans", f"{where_r}.scopeSpans[{j}]")):
                where = f"{where_r}.scopeSpans[{j}].spans[{k}]"
                sp = _obj(sp, where)
                cut = _Cut(limits.max_attr_chars)
                raw_events = _list(sp, "events", "events", where)
                events = []
                for e, ev in enumerate(raw_events[:MAX_EVENTS]):
                    ev = _obj(ev, f"{where}.events[{e}]")
                    events.append(
                        SpanEvent(
                            _text(ev.get("name")),
                            _int(_get(ev, "timeUnixNano", "time_unix_nano"), f"{where}.events[{e}].timeUnixNano"),
                            _json_attrs(
                                _list(ev, "attributes", "attributes", where), cut, f"{where}.events[{e}].attributes"
                            ),
                        )
                    )
                raw_status = sp.get("status")
                status: dict[str, Any] = raw_status if isinstance(raw_status, dict) else {}
                code = status.get("code", 0)
                message = status.get("message")
                spans.append(
                    Span(
                        trace_id=_hex_id(_get(sp, "traceId", "trace_id"), 16, f"{where}.traceId"),
                        span_id=_hex_id(_get(sp, "spanId", "span_id"), 8, f"{where}.spanId"),
                        parent_span_id=_hex_id(_get(sp, "parentSpanId", "parent_span_id"), 8, f"{where}.parentSpanId"),
                        name=_text(sp.get("name")),
                        start_ns=_int(
                            _get(sp, "startTimeUnixNano", "start_time_unix_nano"), f"{where}.startTimeUnixNano"
                        ),
                        end_ns=_int(_get(sp, "endTimeUnixNano", "end_time_unix_nano"), f"{where}.endTimeUnixNano"),
                        attrs=_json_attrs(_list(sp, "attributes", "attributes", where), cut, f"{where}.attributes"),
                        events=events,
                        status_code=_status_code(code),
                        status_message=cut.text(message) if isinstance(message, str) else "",
                        resource=resource,
                        scope=scope,
                        truncated=cut.truncated or len(raw_events) > MAX_EVENTS,
                    )
                )
    return spans


_STATUS_NAMES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}


def _status_code(code: Any) -> int:
    if isinstance(code, str):
        return _STATUS_NAMES.get(code, 0)
    return code if isinstance(code, int) and not isinstance(code, bool) and code in (0, 1, 2) else 0

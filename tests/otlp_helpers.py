"""Spans made by the real OpenTelemetry SDK, encoded as the OTLP exporters encode them (protobuf, or
OTLP/JSON with hex ids), and a corpus of recorded span JSON for instrumentations not installable here."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Tracer, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

__all__ = ["CORPUS", "PROTOBUF", "corpus_body", "json_body", "protobuf_body", "recorded_spans", "sdk_spans"]

CORPUS = Path(__file__).parent / "otlp_corpus"
PROTOBUF = {"content-type": "application/x-protobuf"}


@contextmanager
def recorded_spans(service: str = "shop", env: str = "test") -> Iterator[tuple[Tracer, list[ReadableSpan]]]:
    """A tracer of a fresh SDK provider; the finished spans are in the list once the block ends."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service, "deployment.environment": env}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    finished: list[ReadableSpan] = []
    yield provider.get_tracer("tests.otlp"), finished
    provider.shutdown()
    finished.extend(exporter.get_finished_spans())


def sdk_spans(build: Callable[[Tracer], None], **resource: str) -> list[ReadableSpan]:
    with recorded_spans(**resource) as (tracer, spans):
        build(tracer)
    return spans


def protobuf_body(spans: list[ReadableSpan]) -> bytes:
    return encode_spans(spans).SerializeToString()  # type: ignore[no-any-return]


def _hex_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: (base64.b64decode(v).hex() if k in ("traceId", "spanId", "parentSpanId") and v else _hex_ids(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_hex_ids(v) for v in value]
    return value


def json_body(spans: list[ReadableSpan]) -> bytes:
    """OTLP/JSON as the spec writes it: proto3 JSON, but trace and span ids as hex."""
    return json.dumps(_hex_ids(MessageToDict(encode_spans(spans)))).encode()


def corpus_body(name: str) -> bytes:
    return (CORPUS / name).read_bytes()

"""How a trace is packed into a row and unpacked again (backend-neutral)."""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from pydantic_core import to_json

from ..ids import ms_to_rfc3339, parse_time
from ..ingest_records import ManifestKey, TraceRecord, manifest_key
from ..models import ErrorInfo, Manifest, ModelInfo, Trace, message_text
from ..playground_session import SessionRun
from ..records import TraceSummary

__all__ = [
    "UNKNOWN_DURATION",
    "body_search_text",
    "decode_duration",
    "encode_duration",
    "manifest_etag_of",
    "pack_body",
    "pack_manifest",
    "preview",
    "record_created_ms",
    "record_manifest",
    "search_text",
    "session_run",
    "unpack_trace",
]

#: The traces table's ``duration`` column is NOT NULL (and indexed): an unknown duration is stored as
#: this sentinel and never leaves the store. Below every real duration, it sorts where SQL puts NULLs
#: (first ascending, last descending), never matches ``min_duration >= 0``, and roll-ups skip it.
UNKNOWN_DURATION = -1.0


def encode_duration(duration: float | None) -> float:
    """The column value of a trace's duration (seconds, or None when unknown)."""
    return UNKNOWN_DURATION if duration is None else duration


def decode_duration(value: float | None) -> float | None:
    """A trace's duration from its column value: None when unknown."""
    return None if value is None or value < 0 else value


# A preset dictionary for bodies (kind b"d"): the JSON a body is made of and the hundred most common English
# words (the Oxford English Corpus list), most likely strings last (nearest, so cheapest to refer back to).
# A body of a few hundred bytes compresses poorly on its own: with this, ~20 % smaller. NEVER change these
# bytes: stored bodies need them to be read. A new dictionary needs a new kind byte.
_BODY_DICT = (
    b"the be to of and a in that have I it for not on with he as you do at this but his by from they we say her "
    b"she or an will my one all would there their what so up out if about who get which go me when make can like "
    b"time no just him know take people into year your good some could them see other than then now look only "
    b"come its over think also back after use two how our work first well way even new want because any these "
    b"give day most us The I'm you're it's don't can't "
    b'{"error":{"type":"","message":""},"metadata":{},"tool_calls":[{"id":"","name":"","arguments":{}}],'
    b'"model_metadata":{},"etag":"","created_ms":'
    b'{"variables":{"name":"","messages":[{"role":"system","content":"'
    b'"},{"role":"assistant","content":"'
    b'"},{"role":"user","content":"'
    b'"}],"output":"'
)
_SMALL = 48  # below this, JSON as is


def _compress_raw(raw: bytes) -> bytes:
    # A leading byte says which form is stored: b"j" JSON, b"z" zlib (older rows), b"d" raw deflate with
    # the preset dictionary.
    if len(raw) < _SMALL:
        return b"j" + raw
    packer = zlib.compressobj(6, zlib.DEFLATED, -15, zdict=_BODY_DICT)
    packed = packer.compress(raw) + packer.flush()
    return b"d" + packed if len(packed) < len(raw) else b"j" + raw


def _decompress(blob: bytes) -> dict[str, Any]:
    kind, payload = blob[:1], blob[1:]
    if kind == b"d":
        unpacker = zlib.decompressobj(-15, zdict=_BODY_DICT)
        raw = unpacker.decompress(payload) + unpacker.flush()
    elif kind == b"z":
        raw = zlib.decompress(payload)
    else:
        raw = payload
    result: dict[str, Any] = json.loads(raw)
    return result


def record_manifest(rec: TraceRecord) -> ManifestKey:
    """The record's manifest key: the one its builder computed, else derived from the trace."""
    return rec.manifest if rec.manifest is not None else manifest_key(rec.trace.manifest)


def record_created_ms(rec: TraceRecord) -> int:
    """The record's creation time in Unix ms: the one its builder kept, else parsed from the trace."""
    return rec.created_ms if rec.created_ms is not None else parse_time(rec.trace.created_at, "createdAt")


def pack_manifest(text: str) -> bytes:
    """The stored form of a manifest's canonical JSON (already compact: compressed as it is)."""
    return _compress_raw(text.encode())


def pack_body(trace: Trace, created_ms: int | None = None) -> bytes:
    """The trace's body blob. ``created_ms`` is kept only when the row's seq could not carry the trace's
    own millisecond (4096 traces already had it: the seq spilled into a later one)."""
    data: dict[str, Any] = {}
    if created_ms is not None:
        data["created_ms"] = created_ms
    # The fields as they are (an empty one is left out): to_json writes what model_dump(mode="json") would.
    if trace.variables:
        data["variables"] = trace.variables
    if trace.messages:
        data["messages"] = trace.messages
    if trace.output is not None:
        data["output"] = trace.output
    if trace.tool_calls:
        data["tool_calls"] = trace.tool_calls
    if trace.error is not None:
        data["error"] = trace.error.model_dump(mode="json")
    if trace.metadata:
        data["metadata"] = trace.metadata
    if trace.model.metadata:
        data["model_metadata"] = trace.model.metadata
    if trace.etag is not None and trace.etag != trace.manifest.etag:
        data["etag"] = trace.etag
    return _compress_raw(to_json(data, by_alias=False, inf_nan_mode="null"))  # as model_dump(mode="json")


def created_ms_of(seq: int, body: dict[str, Any]) -> int:
    """A trace's own creation time: its seq's millisecond, unless the seq spilled (see :func:`pack_body`)."""
    return int(body.get("created_ms", seq >> 12))


def unpack_trace(row: dict[str, Any], manifest: bytes) -> Trace:
    body = _decompress(row["body"])
    man = _decompress(manifest)
    return Trace(
        id=row["id"],
        created_at=ms_to_rfc3339(created_ms_of(row["seq"], body)),
        prompt_name=row["prompt_name"],
        prompt_version=row["prompt_version"],
        etag=body.get("etag", man.get("etag")),
        manifest=Manifest.model_validate(man),
        variables=body.get("variables", {}),
        messages=body.get("messages", []),
        output=body.get("output"),
        tool_calls=body.get("tool_calls", []),
        input_tokens=row["input_tokens"],
        output_tokens=row["output_tokens"],
        total_tokens=row["total_tokens"],
        cost=row["cost"],
        duration=decode_duration(row["duration"]),
        model=ModelInfo(
            provider=row["model_provider"], name=row["model_name"], metadata=body.get("model_metadata", {})
        ),
        status="error" if row["status"] else "success",
        error=body.get("error"),
        tags=json.loads(row["tags"]) if row["tags"] else [],
        metadata=body.get("metadata", {}),
        source=row["source"],
        session_id=row["session_id"],
        parent_trace_id=row["parent_trace_id"],
    )


def preview(body_blob: bytes, limit: int = 120) -> str:
    return preview_of(_decompress(body_blob), limit)


def summary_fields(seq: int, body_blob: bytes, limit: int = 120) -> tuple[int, str]:
    """(creation ms, output preview) of a list row, from one decompression of its body."""
    body = _decompress(body_blob)
    return created_ms_of(seq, body), preview_of(body, limit)


def preview_of(body: dict[str, Any], limit: int = 120) -> str:
    text = body.get("output")
    if not text and body.get("error"):
        err = body["error"]
        text = f"[{err.get('type')}] {err.get('message')}"
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _flatten(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return " ".join(_flatten(v) for v in value.values())
    if isinstance(value, list):
        return " ".join(_flatten(v) for v in value)
    return "" if value is None else str(value)


def search_text(trace: Trace) -> str:
    """What full-text search sees: message contents, the output and variable values."""
    error = trace.error.message if trace.error is not None else None
    return _search_text(trace.messages, trace.output, trace.variables, error)


def body_search_text(body_blob: bytes) -> str:
    """``search_text`` of a stored trace, from its packed body alone (to rebuild a full-text index)."""
    body = _decompress(body_blob)
    error = body.get("error")
    message = error.get("message") if isinstance(error, dict) else None
    return _search_text(body.get("messages", []), body.get("output"), body.get("variables", {}), message)


def _search_text(messages: list[dict[str, Any]], output: str | None, variables: Any, error: str | None) -> str:
    parts = [message_text(m.get("content")) for m in messages]
    parts.append(output or "")
    parts.append(_flatten(variables))
    if error is not None:
        parts.append(error)
    return "\n".join(p for p in parts if p)


def session_run(row: Mapping[str, Any], manifest_etag: Callable[[int], str | None]) -> SessionRun:
    """A playground run from its trace row, without building the trace: the columns, one decompression of
    the body and (when the body does not carry its own etag) the manifest's etag by ``manifest_id``."""
    body = _decompress(row["body"])
    error = body.get("error")
    return SessionRun.model_construct(
        run_id=row["id"],
        trace_id=row["id"],
        model=f"{row['model_provider']}/{row['model_name']}",
        status="error" if row["status"] else "success",
        output=body.get("output"),
        error=ErrorInfo.model_validate(error) if error else None,
        input_tokens=row["input_tokens"],
        output_tokens=row["output_tokens"],
        total_tokens=row["total_tokens"],
        cost=row["cost"],
        duration=decode_duration(row["duration"]),
        etag=body["etag"] if "etag" in body else manifest_etag(row["manifest_id"]),
        cached=bool(body.get("metadata", {}).get("cached")),
        created_at=ms_to_rfc3339(created_ms_of(row["seq"], body)),
    )


def manifest_etag_of(blob: bytes) -> str | None:
    """The etag a packed manifest names."""
    etag = _decompress(blob).get("etag")
    return str(etag) if etag is not None else None


class Columns(Protocol):
    """A result row read by column name: ``sqlite3.Row``, or psycopg's dict rows."""

    def __getitem__(self, key: str, /) -> Any: ...


def summary_of(row: Columns, created_ms: int, output_preview: str) -> TraceSummary:
    """A ``list_traces`` row from a traces row (either store's columns) and what its body gave."""
    return TraceSummary.model_construct(
        id=row["id"],
        created_at=created_ms,
        prompt_name=row["prompt_name"],
        prompt_version=row["prompt_version"],
        model=f"{row['model_provider']}/{row['model_name']}",
        status="error" if row["status"] else "success",
        total_tokens=row["total_tokens"],
        cost=row["cost"],
        duration=decode_duration(row["duration"]),
        tags=json.loads(row["tags"]) if row["tags"] else [],
        output_preview=output_preview,
    )

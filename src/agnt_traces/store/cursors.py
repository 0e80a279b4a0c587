"""Opaque list cursors: the caller's own last row, encrypted and authenticated with a per-database key.

A cursor names the last trace of a page by its id (the caller already has it) plus the sort and order;
the store looks up that trace's sort position when the next page is asked for. Nothing in it depends on
other tenants' data, so it tells nothing about them; it is sealed anyway so clients treat it as opaque.

Sealing is deterministic authenticated encryption built from HMAC-SHA256 alone (SIV): the tag is a MAC
over the tenant, the list's filters and the payload; the payload is XORed with a key stream derived
from that tag. A cursor made for another tenant or other filters, or altered in any bit, fails the tag.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json

from ..errors import InvalidArgument
from ..records import TraceFilter

__all__ = ["CursorKeys", "filters_fingerprint"]

_TAG_BYTES = 16
_MAX_CURSOR_CHARS = 512


def filters_fingerprint(query: TraceFilter) -> str:
    """The filters of a list (not its page, sort or order) as canonical text. The window is the client's
    text ("24h"), not the resolved times: those move with the clock from page to page."""
    data = {
        "status": query.status,
        "prompt_name": query.prompt_name,
        "prompt_version": query.prompt_version,
        "model": query.model,
        "provider": query.provider,
        "tags": list(query.tags),
        "since": query.since_text,
        "until": query.until_text,
        "min_cost": query.min_cost,
        "min_duration": query.min_duration,
        "min_total_tokens": query.min_total_tokens,
        "query": query.query,
        "session_id": query.session_id,
        "source": query.source,
    }
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _invalid() -> InvalidArgument:
    return InvalidArgument(
        "cursor is not valid for this list: pass the nextCursor of the previous page unchanged, with the same "
        "filters, or omit it to start again",
        {"field": "cursor"},
    )


class CursorKeys:
    """Seals and opens cursors with keys derived from one database secret."""

    def __init__(self, secret: bytes) -> None:
        self._mac_key = hmac.digest(secret, b"agnt-traces cursor mac v1", "sha256")
        self._enc_key = hmac.digest(secret, b"agnt-traces cursor enc v1", "sha256")

    def _tag(self, tenant: str, filters: str, payload: bytes) -> bytes:
        context = json.dumps([tenant, filters], separators=(",", ":"), ensure_ascii=False).encode()
        msg = len(context).to_bytes(4, "big") + context + payload
        return hmac.digest(self._mac_key, msg, "sha256")[:_TAG_BYTES]

    def _stream(self, tag: bytes, length: int) -> bytes:
        out = b""
        counter = 0
        while len(out) < length:
            out += hmac.digest(self._enc_key, tag + counter.to_bytes(4, "big"), "sha256")
            counter += 1
        return out[:length]

    def seal(self, tenant: str, query: TraceFilter, trace_id: str) -> str:
        """The cursor after the trace ``trace_id`` in ``query``'s sort and order."""
        payload = json.dumps([query.sort, query.order, trace_id], separators=(",", ":")).encode()
        tag = self._tag(tenant, filters_fingerprint(query), payload)
        sealed = bytes(a ^ b for a, b in zip(payload, self._stream(tag, len(payload)), strict=True))
        return base64.urlsafe_b64encode(tag + sealed).decode().rstrip("=")

    def open(self, tenant: str, query: TraceFilter, cursor: str) -> str:
        """The trace id a cursor names.

        Raises:
            InvalidArgument: the cursor is malformed, altered, made for another tenant or other filters,
                or for another sort or order.
        """
        if len(cursor) > _MAX_CURSOR_CHARS:
            raise _invalid()
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (binascii.Error, ValueError):
            raise _invalid() from None
        if len(raw) <= _TAG_BYTES:
            raise _invalid()
        tag, sealed = raw[:_TAG_BYTES], raw[_TAG_BYTES:]
        payload = bytes(a ^ b for a, b in zip(sealed, self._stream(tag, len(sealed)), strict=True))
        if not hmac.compare_digest(tag, self._tag(tenant, filters_fingerprint(query), payload)):
            raise _invalid()
        try:
            sort, order, trace_id = json.loads(payload)
        except (ValueError, TypeError):  # pragma: no cover - only our own payloads pass the tag
            raise _invalid() from None
        if (sort, order) != (query.sort, query.order):
            raise InvalidArgument(
                f"cursor was made for sort={sort} order={order}: use the same sort and order for every "
                "page, or omit the cursor to start again",
                {"field": "cursor"},
            )
        if not isinstance(trace_id, str):  # pragma: no cover - as above
            raise _invalid()
        return trace_id

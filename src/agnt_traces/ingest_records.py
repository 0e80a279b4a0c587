"""What the store takes in and gives back when traces are written: domain records, not API JSON.

Services build a ``TraceRecord`` once per trace (validated, digested, its manifest hashed) and the store
writes it as it is; the store answers with one ``IngestResult`` per record. Both sides import this module;
neither owns it.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from typing import Any

from pydantic_core import to_json

from .models import Manifest, Trace, canonical_json

__all__ = ["IngestResult", "ManifestKey", "TraceRecord", "manifest_key", "manifest_key_of"]


@dataclass(slots=True, frozen=True)
class ManifestKey:
    """A manifest's identity: ``digest`` (16 bytes of sha256) of its canonical JSON ``text``. Identical
    manifests share one stored row."""

    digest: bytes
    text: str


def manifest_key(manifest: Manifest) -> ManifestKey:
    """The key of a manifest: the digest of its canonical JSON (camelCase names, sorted keys), and that JSON."""
    return manifest_key_of(manifest.model_dump(mode="json", by_alias=True))


#: Keys of manifests seen lately, by their JSON as dumped (keys in the order given): an app's traces repeat
#: a few manifests, and this JSON costs a fraction of the canonical one. Bounded in bytes; cleared when full.
_RECENT: dict[bytes, ManifestKey] = {}
_RECENT_BYTES = 0
_RECENT_MAX_BYTES = 8 << 20
_RECENT_MAX_ONE = 64 << 10


def manifest_key_of(dump: dict[str, Any]) -> ManifestKey:
    """:func:`manifest_key` of a manifest's JSON dump (camelCase names).

    Raises:
        ValueError: a number in it is not finite.
    """
    global _RECENT_BYTES
    try:
        seen: bytes | None = to_json(dump, inf_nan_mode="constants")  # NaN and Infinity stay apart from null
    except ValueError:  # e.g. a lone surrogate: canonical JSON decides, uncached
        seen = None
    key = _RECENT.get(seen) if seen is not None else None
    if key is not None:
        return key
    text = canonical_json(dump)
    key = ManifestKey(hashlib.sha256(text.encode()).digest()[:16], text)
    # What the entry holds: the dumped JSON, the canonical text, the digest, the key object and the dict slot.
    size = sys.getsizeof(seen) + sys.getsizeof(text) + 200 if seen is not None else _RECENT_MAX_ONE + 1
    if seen is not None and size <= _RECENT_MAX_ONE:
        if _RECENT_BYTES + size > _RECENT_MAX_BYTES:
            _RECENT.clear()
            _RECENT_BYTES = 0
        _RECENT[seen] = key
        _RECENT_BYTES += size
    return key


@dataclass(slots=True)
class TraceRecord:
    """A validated trace ready to store.

    ``digest`` identifies the posted content (for idempotent client ids); ``client_id`` says whether the
    id came from the client. ``created_ms`` is the trace's creation time in Unix milliseconds (the one
    form the store keeps; ``trace.created_at`` is its RFC 3339 rendering) and ``manifest`` its manifest's
    key, both computed once by whoever built the record; ``None`` lets the store derive them from ``trace``.
    ``size``: the trace's length as JSON, when known (it lets a store write a small trace at once).
    """

    trace: Trace
    digest: bytes
    client_id: bool
    created_ms: int | None = None
    manifest: ManifestKey | None = None
    size: int | None = None


@dataclass(slots=True)
class IngestResult:
    """One stored record: its id, and ``created`` False when the same id and content were already stored."""

    id: str
    created: bool

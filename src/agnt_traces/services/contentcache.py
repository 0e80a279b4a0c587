"""Prompt contents by (tenant, etag), kept in memory: a content is stored under the hash of itself and
never changed or deleted, so one read from the store answers every later read of the same etag."""

from __future__ import annotations

import threading
from collections import OrderedDict

from ..models import PromptContent, canonical_json

__all__ = ["ContentCache"]

#: Contents kept; one larger than ``MAX_ENTRY_BYTES`` of canonical JSON is not kept.
MAX_ENTRIES = 128
MAX_ENTRY_BYTES = 64_000


class ContentCache:
    """LRU of contents as the store keeps them (canonical JSON). Every hit is parsed afresh (~10 µs, less
    than a deep copy): a caller may change what it gets without changing what the next one gets."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_entry_bytes: int = MAX_ENTRY_BYTES) -> None:
        self.max_entries = max_entries
        self.max_entry_bytes = max_entry_bytes
        self._entries: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, tenant: str, etag: str) -> PromptContent | None:
        with self._lock:
            text = self._entries.get((tenant, etag))
            if text is None:
                return None
            self._entries.move_to_end((tenant, etag))
        return PromptContent.model_validate_json(text)

    def put(self, tenant: str, etag: str, content: PromptContent) -> None:
        text = canonical_json(content.canonical())
        if len(text) > self.max_entry_bytes:
            return
        with self._lock:
            self._entries[(tenant, etag)] = text
            self._entries.move_to_end((tenant, etag))
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

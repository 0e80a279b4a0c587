"""Signed-in browsers: an opaque session id in an HttpOnly, SameSite=Strict cookie, the rest on the server.

A session holds its tenant (None until signed in), a CSRF token that every POST form must echo, the
hash of the bearer token it signed in with (so revoking the token ends the session) and one-shot notices
("saved", "published") shown by the next page. The token itself is never kept, logged or put in a URL.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["COOKIE", "WebSession", "WebSessions"]

COOKIE = "agnt_web"
IDLE_SECONDS = 12 * 3600.0
MAX_SESSIONS = 10_000


@dataclass
class WebSession:
    id: str
    csrf: str
    tenant: str | None = None
    token_hash: bytes | None = None
    expires: float = 0.0
    notices: list[dict[str, Any]] = field(default_factory=list)

    def csrf_ok(self, sent: str | None) -> bool:
        return bool(sent) and hmac.compare_digest(self.csrf.encode(), (sent or "").encode())

    def notice(self, text: str, kind: str = "ok", **extra: Any) -> None:
        self.notices.append({"text": text, "kind": kind, **extra})

    def take_notices(self) -> list[dict[str, Any]]:
        out, self.notices = self.notices, []
        return out


class WebSessions:
    """In memory: a server restart signs everybody out (they sign in again with their token)."""

    def __init__(self, idle_seconds: float = IDLE_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_seconds = idle_seconds
        self._clock = clock
        self._by_id: dict[str, WebSession] = {}

    def get(self, session_id: str | None) -> WebSession | None:
        if not session_id:
            return None
        found = self._by_id.get(session_id)
        now = self._clock()
        if found is None or found.expires < now:
            self._by_id.pop(session_id, None)
            return None
        found.expires = now + self.idle_seconds
        return found

    def create(self, tenant: str | None = None, token_hash: bytes | None = None) -> WebSession:
        if len(self._by_id) >= MAX_SESSIONS:
            self._evict()
        session = WebSession(
            id=secrets.token_urlsafe(32),
            csrf=secrets.token_urlsafe(32),
            tenant=tenant,
            token_hash=token_hash,
            expires=self._clock() + self.idle_seconds,
        )
        self._by_id[session.id] = session
        return session

    def drop(self, session_id: str) -> None:
        self._by_id.pop(session_id, None)

    def _evict(self) -> None:
        now = self._clock()
        for sid in [sid for sid, s in self._by_id.items() if s.expires < now]:
            del self._by_id[sid]
        if len(self._by_id) >= MAX_SESSIONS:  # still full: the anonymous ones go first, then the oldest
            anonymous = [sid for sid, s in self._by_id.items() if s.tenant is None]
            for sid in anonymous or sorted(self._by_id, key=lambda k: self._by_id[k].expires)[: MAX_SESSIONS // 10]:
                del self._by_id[sid]

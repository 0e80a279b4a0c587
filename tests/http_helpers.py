"""The HTTP app driven in-process (no socket): ``build_http_app`` with its lifespan running, httpx2 over
``ASGITransport``, and a bearer token per tenant. Fast enough for property-based tests."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2
from starlette.applications import Starlette

import factories
from agnt_traces.app import App
from agnt_traces.config import Settings
from agnt_traces.errors import (
    AgntError,
    CompileError,
    Conflict,
    InternalError,
    InvalidArgument,
    ModelError,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
)
from agnt_traces.http.app import build_http_app

__all__ = [
    "CODES",
    "NEVER_IN_MESSAGES",
    "STATUS_OF",
    "InProcess",
    "check_error_body",
    "db_snapshot",
    "in_process",
]

_ERRORS: tuple[type[AgntError], ...] = (
    NotFound,
    InvalidArgument,
    Conflict,
    Unauthorized,
    PayloadTooLarge,
    CompileError,
    ModelError,
    InternalError,
)
#: The error codes of SPEC §4, and the HTTP status of each.
STATUS_OF: dict[str, int] = {cls.code: cls.http_status for cls in _ERRORS}
CODES = frozenset(STATUS_OF)


@dataclass
class InProcess:
    asgi: Starlette
    client: httpx2.AsyncClient  # base URL http://testserver, no auth header
    tokens: dict[str, str] = field(default_factory=dict)  # tenant -> bearer token

    @property
    def app(self) -> App:
        return self.asgi.state.runtime.app  # type: ignore[no-any-return]

    async def add_token(self, tenant: str) -> str:
        token, _ = await factories.add_token(self.app, tenant)
        self.tokens[tenant] = token
        return token

    def auth(self, tenant: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[tenant]}"}

    async def request(self, tenant: str, method: str, path: str, **kwargs: Any) -> httpx2.Response:
        """``path`` relative to ``/api/v1/tenants/{tenant}``, with that tenant's token."""
        headers = {**self.auth(tenant), **kwargs.pop("headers", {})}
        return await self.client.request(method, f"/api/v1/tenants/{tenant}{path}", headers=headers, **kwargs)


@asynccontextmanager
async def in_process(settings: Settings, *tenants: str, **kwargs: Any) -> AsyncIterator[InProcess]:
    """The REST app with its lifespan (one App on ``settings.db_path``) and a token for each tenant."""
    asgi = build_http_app(settings, **kwargs)
    async with asgi.router.lifespan_context(asgi):
        # raise_app_exceptions=False: a crash must show up as the 500 the client would get.
        transport = httpx2.ASGITransport(asgi, raise_app_exceptions=False)
        async with httpx2.AsyncClient(transport=transport, base_url="http://testserver", timeout=30) as client:
            env = InProcess(asgi, client)
            for tenant in tenants:
                await env.add_token(tenant)
            yield env


#: Never in an error message: tracebacks, and pydantic's echo of the caller's input (which may be a secret).
NEVER_IN_MESSAGES = ("Traceback", 'File "', "input_value", "input_type")


def check_error_body(body: Any, *, forbidden: tuple[str, ...] = ()) -> dict[str, Any]:
    """``body`` is exactly ``{"error": {"code", "message", "details"}}`` with a SPEC code and a message."""
    assert isinstance(body, dict) and set(body) == {"error"}, body
    err = body["error"]
    assert isinstance(err, dict) and set(err) == {"code", "message", "details"}, body
    assert err["code"] in CODES, body
    assert isinstance(err["message"], str) and err["message"].strip(), body
    assert isinstance(err["details"], dict), body
    text = json.dumps(err, ensure_ascii=False)
    for bad in (*NEVER_IN_MESSAGES, *forbidden):
        assert bad not in text, (bad, body)
    return err


def db_snapshot(db_path: str) -> dict[str, str]:
    """A digest of every row of every table of the SQLite file (read through a separate connection)."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        tables = [
            name
            for (name, sql) in conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY name")
            if not (sql or "").upper().startswith("CREATE VIRTUAL")
        ]
        out = {}
        for table in tables:
            rows = sorted(repr(row) for row in conn.execute(f'SELECT * FROM "{table}"'))
            digest = hashlib.sha256("\n".join(rows).encode()).hexdigest()[:16]
            out[table] = f"{len(rows)}:{digest}"
        return out
    finally:
        conn.close()

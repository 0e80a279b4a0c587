"""Small builders of test data, and the one way tests make bearer tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agnt_traces.app import App, open_app
from agnt_traces.config import Settings
from agnt_traces.tokens import hash_token, new_token


def trace_payload(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "promptName": "support",
        "promptVersion": 1,
        "manifest": {"system": "You are a helpful support agent.", "tools": [], "model": {}, "etag": "e1"},
        "variables": {"company_name": "Acme", "tier": "premium"},
        "messages": [{"role": "user", "content": "Where is my refund?"}],
        "output": "Your refund was issued yesterday.",
        "inputTokens": 40,
        "outputTokens": 9,
        "cost": 0.0012,
        "duration": 0.8,
        "model": {"provider": "openai", "name": "gpt-4o-mini"},
        "status": "success",
        "tags": ["prod"],
    }
    base.update(overrides)
    return base


async def add_token(app: App, tenant: str, name: str = "test") -> tuple[str, str]:
    """A new bearer token for ``tenant`` in an open app, stored (hashed) as ``agnt-traces token create``
    does: ``(token, token id)``."""
    token = new_token()
    rec = await app.store.create_token(tenant, name, hash_token(token))
    return token, rec.id


async def make_token(db: Settings | str | Path, tenant: str, name: str = "test") -> str:
    """A bearer token for ``tenant`` in the database ``db`` (a Settings, or a path), made before a server
    opens it."""
    settings = db if isinstance(db, Settings) else Settings(db_path=str(db))
    async with open_app(settings) as app:
        token, _ = await add_token(app, tenant, name)
    return token

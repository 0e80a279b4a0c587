"""Small builders of test data."""

from __future__ import annotations

from typing import Any


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

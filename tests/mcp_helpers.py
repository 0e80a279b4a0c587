"""Calling tools the way an agent does, and reading the one error shape."""

from __future__ import annotations

import json
from typing import Any

from mcp import Client


async def call(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    """Call a tool that must succeed; return its structured result."""
    result = await client.call_tool(tool, args)
    text = result.content[0].text if result.content else ""  # type: ignore[union-attr]
    assert not result.is_error, f"{tool} failed: {text}"
    assert result.structured_content is not None
    return result.structured_content


async def call_error(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    """Call a tool that must fail; return the ``error`` object, checking text and structure agree."""
    result = await client.call_tool(tool, args)
    assert result.is_error, f"{tool} unexpectedly succeeded"
    text = result.content[0].text  # type: ignore[union-attr]
    payload = json.loads(text)
    assert set(payload["error"]) == {"code", "message", "details"}
    assert result.structured_content == payload
    return payload["error"]

"""Calling tools the way an agent does, and reading the one error shape."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters

AGNT = str(Path(sys.executable).parent / "agnt-traces")


def server_params(db_path: str, tenant: str = "default", **env: str) -> StdioServerParameters:
    """The stdio server gets only a default environment: pass on PYTHONPATH (the code under test), the
    model endpoints a test allowed (``model_server`` sets them) and any ``env`` given here."""
    passed = {k: os.environ[k] for k in ("PYTHONPATH", "AGNT_TRACES_MODEL_ENDPOINTS") if k in os.environ}
    return StdioServerParameters(
        command=AGNT,
        args=["serve", "--db", db_path, "--tenant", tenant],
        env={"AGNT_TRACES_LOG_LEVEL": "WARNING", **passed, **env},
    )


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

"""Every MCP tool publishes a real output schema: a valid JSON Schema 2020-12 document that names the result's
properties and which of them are required, not the catch-all ``{"type": "object", "additionalProperties": true}``.

Read from ``tools/list`` of a real ``agnt-traces serve`` process over stdio. Each area's own tests call its tools
on real data and validate the results against these schemas (e.g. tests/server/test_golden_output_schemas.py).
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from jsonschema import Draft202012Validator
from mcp import Client

from mcp_helpers import server_params

pytestmark = pytest.mark.anyio


def _catch_all(schema: dict[str, Any] | None) -> bool:
    """The schema the SDK publishes for a ``dict`` result: any object at all (``additionalProperties: true``
    is the default, said or not)."""
    if schema is None:
        return False
    rest = {k: v for k, v in schema.items() if k not in ("title", "description")}
    return rest in ({"type": "object", "additionalProperties": True}, {"type": "object"})


def _problems(name: str, schema: dict[str, Any] | None) -> list[str]:
    if schema is None:
        return [f"{name}: no outputSchema"]
    found = []
    try:
        Draft202012Validator.check_schema(schema)
    except Exception as exc:
        found.append(f"{name}: not a valid 2020-12 schema ({str(exc)[:120]})")
    if _catch_all(schema):
        found.append(f"{name}: the catch-all object schema")
    if schema.get("type") != "object" or not schema.get("properties"):
        found.append(f"{name}: names no properties")
    if not schema.get("required"):
        found.append(f"{name}: says no property is required")
    return found


async def test_every_tool_publishes_a_real_output_schema(db_path: str) -> None:
    with anyio.fail_after(60):
        async with Client(server_params(db_path), mode="legacy") as c:
            tools = (await c.list_tools()).tools
    assert len(tools) >= 28
    problems = [p for t in tools for p in _problems(t.name, t.output_schema)]
    assert problems == [], "\n".join(problems)

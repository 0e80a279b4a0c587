"""What an agent reads before it calls anything: every tool parameter says what it takes."""

from __future__ import annotations

import anyio
import pytest
from jsonschema import Draft202012Validator
from mcp import Client

from agnt_traces.config import Settings
from agnt_traces.server.mcp import build_server

pytestmark = pytest.mark.anyio


async def list_tools() -> list:  # type: ignore[type-arg]
    with anyio.fail_after(30):
        async with Client(build_server(Settings(db_path=":memory:"))) as c:
            return list((await c.list_tools()).tools)


async def test_every_tool_parameter_has_a_description() -> None:
    missing = [
        f"{tool.name}.{name}"
        for tool in await list_tools()
        for name, schema in tool.input_schema.get("properties", {}).items()
        if not str(schema.get("description", "")).strip()
    ]
    assert missing == []


async def test_descriptions_carry_no_source_indentation() -> None:
    for tool in await list_tools():
        assert tool.description and tool.description == tool.description.strip()
        assert "\n " not in tool.description, tool.name


async def test_input_schemas_are_valid_and_ingest_trace_documents_the_trace_fields() -> None:
    tools = {tool.name: tool for tool in await list_tools()}
    for tool in tools.values():
        Draft202012Validator.check_schema(tool.input_schema)
        assert "$ref" not in str(tool.input_schema.get("properties", {}).get("trace", {}))
    trace = tools["ingest_trace"].input_schema["properties"]["trace"]
    for field in ("messages", "output", "inputTokens", "status", "error", "model", "duration", "cost"):
        assert field in trace["properties"], field
    assert "camelCase" in trace["description"]
    validator = Draft202012Validator(tools["ingest_trace"].input_schema)
    assert validator.is_valid({"trace": {"messages": [{"role": "user", "content": "hi"}], "output": "ok"}})
    assert not validator.is_valid({"trace": {"inputTokens": "many"}})

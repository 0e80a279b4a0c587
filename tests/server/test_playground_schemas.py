"""Every playground tool publishes a real output schema, and its real results validate against it."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator
from mcp import Client

from agnt_traces.config import Settings
from agnt_traces.http.openapi import openapi_document
from agnt_traces.server.mcp import build_server

pytestmark = pytest.mark.anyio

PLAYGROUND_TOOLS = {
    "open_playground",
    "get_session",
    "list_sessions",
    "edit_block",
    "update_variables",
    "update_models",
    "compile_session",
    "run_session",
    "diff_session",
    "diff_trace",
    "save_session",
    "delete_session",
}

ECHO = {"provider": "agnt-local", "name": "echo", "params": {}}
CONTENT = {
    "blocks": [
        {"id": "intro", "role": "system", "content": "You help {{ company }}."},
        {"id": "q", "role": "user", "content": "Order {{ order }}"},
    ],
    "variables": [
        {"name": "company", "type": "string", "required": True},
        {"name": "order", "type": "integer", "required": True},
    ],
    "model": ECHO,
}


class Checked:
    """Calls tools and validates each structured result against the tool's published output schema."""

    def __init__(self, client: Client, schemas: dict[str, dict[str, Any]]) -> None:
        self.client = client
        self.schemas = schemas
        self.seen: dict[str, int] = {}

    async def __call__(self, tool: str, **args: Any) -> dict[str, Any]:
        result = await self.client.call_tool(tool, args)
        text = result.content[0].text if result.content else ""  # type: ignore[union-attr]
        assert not result.is_error, f"{tool}: {text}"
        assert result.structured_content is not None
        errors = sorted(Draft202012Validator(self.schemas[tool]).iter_errors(result.structured_content), key=str)
        assert not errors, f"{tool}: {[e.message for e in errors]}"
        self.seen[tool] = self.seen.get(tool, 0) + 1
        return result.structured_content


async def test_every_playground_tool_result_validates_against_its_output_schema(settings: Settings) -> None:
    async with Client(build_server(settings)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        schemas: dict[str, dict[str, Any]] = {}
        for name in PLAYGROUND_TOOLS:
            schema = tools[name].output_schema
            assert schema is not None, f"{name} publishes no output schema"
            Draft202012Validator.check_schema(schema)
            assert schema != {"type": "object", "additionalProperties": True}, name
            assert schema.get("properties") and schema.get("required"), f"{name}: a trivial schema"
            schemas[name] = schema
        call = Checked(client, schemas)

        await client.call_tool("upsert_prompt", {"name": "support", "content": CONTENT})
        await client.call_tool("publish_prompt", {"name": "support"})
        ran = await client.call_tool(
            "run_prompt",
            {
                "name": "support",
                "variables": {"company": "Acme", "order": 7},
                "messages": [{"role": "user", "content": "hi"}],
            },
        )
        trace_id = ran.structured_content["trace"]["id"]  # type: ignore[index]

        session = await call("open_playground", trace_id=trace_id)
        sid = session["id"]
        assert set(schemas["open_playground"]["required"]) >= {"id", "traceId", "blocks", "runs", "revision"}
        await call("list_sessions")
        await call("edit_block", session_id=sid, block_id="intro", content="You help {{ company }} kindly.")
        await call("edit_block", session_id=sid, block_id="tier", op="insert", content="Tier {{ tier }}", after="intro")
        await call("update_variables", session_id=sid, values={"tier": "gold"}, declarations=[{"name": "tier"}])
        await call("update_models", session_id=sid, models=[ECHO, {**ECHO, "params": {"temperature": 0.5}}])
        compiled = await call("compile_session", session_id=sid)
        assert len(compiled["estimates"]) == 2
        run = await call("run_session", session_id=sid)
        assert [r["status"] for r in run["runs"]] == ["success", "success"]
        viewed = await call("get_session", session_id=sid)
        assert len(viewed["runs"]) == 2 and viewed["runs"][0]["traceId"]
        listed = await call("list_sessions")
        assert listed["sessions"][0]["runCount"] == 2
        diff = await call("diff_session", session_id=sid)
        assert diff["changed"] and [m["model"] for m in diff["models"]] == ["agnt-local/echo"]
        truncated = await call("diff_session", session_id=sid, max_chars=10)
        assert truncated["truncated"]["omittedFiles"]
        await call("diff_trace", trace_id=trace_id)
        await call("diff_trace", trace_id=trace_id, against="draft", max_chars=5)
        saved = await call("save_session", session_id=sid)
        assert saved["diff"]["changed"] and saved["created"] is False

        ingested = await client.call_tool(
            "ingest_trace",
            {
                "trace": {
                    "model": {"provider": "agnt-local", "name": "echo"},
                    "messages": [{"role": "user", "content": "x"}],
                }
            },
        )
        literal = await call("open_playground", trace_id=ingested.structured_content["id"])  # type: ignore[index]
        assert literal["literal"] is True
        created = await call("save_session", session_id=literal["id"], prompt_name="fresh")
        assert created["created"] is True and "diff" not in created
        deleted = await call("delete_session", session_id=literal["id"])
        assert deleted == {"id": literal["id"], "deleted": True}

    assert set(call.seen) == PLAYGROUND_TOOLS


def test_the_rest_session_routes_publish_the_same_result_models() -> None:
    doc = openapi_document()
    schemas = doc["components"]["schemas"]
    base = "/api/v1/tenants/{tenant}"
    session = base + "/playground/sessions/{session_id}"
    expected = {
        ("post", base + "/traces/{trace_id}/playground/sessions", "201"): "SessionView",
        ("get", base + "/playground/sessions", "200"): "SessionList",
        ("get", session, "200"): "SessionView",
        ("delete", session, "200"): "DeletedSession",
        ("patch", session + "/blocks/{block_id}", "200"): "SessionView",
        ("patch", session + "/variables", "200"): "SessionView",
        ("patch", session + "/models", "200"): "SessionView",
        ("post", session + "/compile", "200"): "CompiledSession",
        ("post", session + "/run", "200"): "RunOutcome",
        ("get", session + "/diff", "200"): "SessionDiff",
        ("post", session + "/save", "200"): "SavedSession",
        ("get", base + "/traces/{trace_id}/diff", "200"): "TraceDiff",
    }
    paths = doc["paths"]
    for (method, path, status), model in expected.items():
        key = path if path in paths else path.removeprefix("/api/v1")
        response = paths[key][method]["responses"][status]
        assert response["content"]["application/json"]["schema"] == {"$ref": f"#/components/schemas/{model}"}
        assert schemas[model]["properties"], model
    assert "runCount" in schemas["SessionListing"]["properties"]
    assert {"runId", "traceId", "status"} <= set(schemas["SessionRun"]["required"])

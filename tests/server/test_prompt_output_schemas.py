"""The prompt tools publish real output schemas (from their result models), every real result validates
against them with a JSON Schema 2020-12 validator, and the REST operations document the same models."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from mcp import Client

from agnt_traces.config import Settings
from agnt_traces.http.openapi import openapi_document
from agnt_traces.server.mcp import build_server
from modelserver import ModelServer

pytestmark = pytest.mark.anyio

PROMPT_TOOLS = ("list_prompts", "get_prompt", "upsert_prompt", "publish_prompt", "run_prompt")
#: The REST operation of each tool, and the model both publish.
REST_OF_TOOL = {
    "list_prompts": ("get_/api/v1/tenants/{tenant}/prompts", "PromptList"),
    "get_prompt": ("get_/api/v1/tenants/{tenant}/prompts/{name}", "PromptDetail"),
    "upsert_prompt": ("put_/api/v1/tenants/{tenant}/prompts/{name}", "UpsertResult"),
    "publish_prompt": ("post_/api/v1/tenants/{tenant}/prompts/{name}/publish", "PublishResult"),
    "run_prompt": ("post_/api/v1/tenants/{tenant}/prompts/{name}/run", "RunPromptResult"),
}
TRIVIAL = {"type": "object", "additionalProperties": True}


def content(server: ModelServer, greeting: str = "You help {{ company_name }}.") -> dict[str, Any]:
    return {
        "blocks": [{"id": "intro", "role": "system", "content": greeting}],
        "variables": [{"name": "company_name", "type": "string", "required": True}],
        "model": {"provider": "openai", "name": "gpt-4o-mini", "params": {"api_base": server.openai_base}},
    }


class Checked:
    """Calls tools over a real MCP client and validates each structured result against the tool's schema."""

    def __init__(self, client: Client, schemas: dict[str, dict[str, Any]]) -> None:
        self.client = client
        self.validators = {name: Draft202012Validator(schema) for name, schema in schemas.items()}
        self.seen: set[str] = set()

    async def call(self, tool: str, **args: Any) -> dict[str, Any]:
        result = await self.client.call_tool(tool, args)
        text = result.content[0].text  # type: ignore[union-attr]
        assert not result.is_error, f"{tool} failed: {text}"
        structured = result.structured_content
        assert structured is not None
        errors = [e.message for e in self.validators[tool].iter_errors(structured)]
        assert errors == [], f"{tool}: {errors}"
        assert json.loads(text) == structured  # the text and the structured content are the same JSON
        self.seen.add(tool)
        return structured


async def prompt_tool_schemas(client: Client) -> dict[str, dict[str, Any]]:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    return {name: tools[name].output_schema for name in PROMPT_TOOLS}  # type: ignore[misc]


async def test_every_prompt_tool_result_validates_against_its_schema(
    settings: Settings, model_server: ModelServer
) -> None:
    async with Client(build_server(settings)) as client:
        schemas = await prompt_tool_schemas(client)
        for name, schema in schemas.items():
            assert schema is not None, f"{name} publishes no output schema"
            Draft202012Validator.check_schema(schema)
            assert schema != TRIVIAL
            assert schema["additionalProperties"] is False, name
            assert schema["properties"] and schema["required"], name
        c = Checked(client, schemas)

        created = await c.call("upsert_prompt", name="support", content=content(model_server), description="d")
        assert created["latestVersion"] is None and created["warnings"] == []
        v1 = await c.call("publish_prompt", name="support", note="first")
        assert "gate" not in v1  # no gate: the key is absent, not null (as before the schemas)
        await c.call("upsert_prompt", name="support", content=content(model_server, "Hi {{ company_name }}."))
        gate = await client.call_tool("set_gate", {"name": "support", "policy": {}})  # a golden tool
        assert not gate.is_error
        gated = await c.call("publish_prompt", name="support", override_reason="hotfix approved")
        assert gated["gate"]["override"] == "hotfix approved"
        await c.call("publish_prompt", name="support", version=1, note="rollback")

        listed = await c.call("list_prompts")
        assert [p["name"] for p in listed["prompts"]] == ["support"]
        draft = await c.call("get_prompt", name="support")
        assert [v.get("gate", {}).get("override") for v in draft["versions"]] == [None, "hotfix approved"]
        assert [h["previousVersion"] for h in draft["history"]] == [None, 1, 2]
        assert "gate" in draft["history"][1] and "gate" not in draft["history"][2]
        await c.call("get_prompt", name="support", label="production")
        await c.call("get_prompt", name="support", version=2)

        ran = await c.call(
            "run_prompt",
            name="support",
            variables={"company_name": "Acme"},
            messages=[{"role": "user", "content": "hello"}],
        )
        assert ran["trace"]["output"] == "echo: hello" and ran["trace"]["replayable"] is True
        assert c.seen == set(PROMPT_TOOLS)

        # An error keeps the one error shape (not validated against the success schema).
        missing = await client.call_tool("get_prompt", {"name": "nope"})
        assert missing.is_error and missing.structured_content["error"]["code"] == "not_found"  # type: ignore[index]


async def test_the_schemas_refuse_a_result_that_lost_or_gained_a_field(
    settings: Settings, model_server: ModelServer
) -> None:
    async with Client(build_server(settings)) as client:
        schemas = await prompt_tool_schemas(client)
        c = Checked(client, schemas)
        await c.call("upsert_prompt", name="support", content=content(model_server))
        await c.call("publish_prompt", name="support")
        got = await c.call("get_prompt", name="support")
    validator = Draft202012Validator(schemas["get_prompt"])
    assert validator.is_valid(got)
    assert not validator.is_valid({k: v for k, v in got.items() if k != "draftEtag"})
    assert not validator.is_valid({**got, "draftEtagg": got["draftEtag"]})
    assert not validator.is_valid({**got, "versions": [{**got["versions"][0], "createdAt": 5}]})
    assert not validator.is_valid({**got, "history": [{**got["history"][0], "at": "x"}]})


async def test_rest_operations_document_the_same_models(settings: Settings) -> None:
    doc = openapi_document()
    schemas = doc["components"]["schemas"]
    async with Client(build_server(settings)) as client:
        tool_schemas = await prompt_tool_schemas(client)
    for tool, (operation, model) in REST_OF_TOOL.items():
        method, path = operation.split("_", 1)
        ok = doc["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"]
        assert ok == {"$ref": f"#/components/schemas/{model}"}, tool
        assert set(schemas[model]["properties"]) == set(tool_schemas[tool]["properties"]), tool
        assert set(schemas[model]["required"]) == set(tool_schemas[tool]["required"]), tool
    versions = doc["paths"]["/api/v1/tenants/{tenant}/prompts/{name}/versions"]["get"]
    ok = versions["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/PromptVersions"}
    assert set(schemas["PromptVersions"]["required"]) >= {"name", "draftEtag", "versions", "labels", "history"}

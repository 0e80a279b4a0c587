"""Ingest results have real schemas: the MCP tool ``ingest_trace`` publishes an output schema that names its
properties, and real results (over a real stdio server) validate against it; the REST ingest route's
OpenAPI responses (one trace, a batch, a 207 batch) are the same types, and real bodies validate too."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from jsonschema import Draft202012Validator
from mcp import Client

from agnt_traces.config import Settings
from agnt_traces.server.mcp import build_server
from factories import trace_payload
from http_helpers import in_process
from mcp_helpers import call, server_params

pytestmark = pytest.mark.anyio

TRIVIAL = {"type": "object", "additionalProperties": True}


def validator(schema: dict[str, Any]) -> Draft202012Validator:
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def check_ingest_schema(schema: dict[str, Any] | None) -> Draft202012Validator:
    assert schema is not None and schema != TRIVIAL
    assert schema["type"] == "object"
    assert set(schema["properties"]) == {"id", "created"}
    assert set(schema["required"]) == {"id", "created"}
    assert schema.get("additionalProperties") is False
    return validator(schema)


async def test_ingest_trace_output_schema_validates_real_results_over_stdio(db_path: str) -> None:
    with anyio.fail_after(60):
        async with Client(server_params(db_path), mode="legacy") as c:
            tools = {t.name: t for t in (await c.list_tools()).tools}
            check = check_ingest_schema(tools["ingest_trace"].output_schema)
            first = await c.call_tool("ingest_trace", {"trace": trace_payload(id="schema-1")})
            again = await c.call_tool("ingest_trace", {"trace": trace_payload(id="schema-1")})
            fresh = await c.call_tool("ingest_trace", {"trace": trace_payload()})
    for result in (first, again, fresh):
        assert not result.is_error
        check.validate(result.structured_content)
        text = result.content[0].text  # type: ignore[union-attr]
        assert json.loads(text) == result.structured_content  # the text says the same
    assert first.structured_content == {"id": "schema-1", "created": True}
    assert again.structured_content == {"id": "schema-1", "created": False}
    assert fresh.structured_content is not None and fresh.structured_content["created"] is True


async def test_ingest_trace_schema_in_memory_both_modes(settings: Settings) -> None:
    for mode in ("legacy", "auto"):
        with anyio.fail_after(30):
            async with Client(build_server(settings), mode=mode) as c:
                tools = {t.name: t for t in (await c.list_tools()).tools}
                check = check_ingest_schema(tools["ingest_trace"].output_schema)
                check.validate(await call(c, "ingest_trace", trace=trace_payload(output=f"in {mode}")))


def _success_schema(doc: dict[str, Any], status: str) -> Draft202012Validator:
    op = doc["paths"]["/api/v1/tenants/{tenant}/traces"]["post"]
    schema = op["responses"][status]["content"]["application/json"]["schema"]
    assert schema != {"type": "object"}
    # Validate against the document's own components (refs are #/components/schemas/...).
    return validator({**schema, "components": doc["components"]})


async def test_rest_ingest_bodies_validate_against_the_openapi_responses(settings: Settings) -> None:
    async with in_process(settings, "acme") as env:
        doc = (await env.client.get("/api/v1/openapi.json")).json()
        one = await env.request("acme", "POST", "/traces", json=trace_payload(id="r1"))
        batch = await env.request("acme", "POST", "/traces", json={"traces": [trace_payload(), trace_payload()]})
        mixed = await env.request(
            "acme",
            "POST",
            "/traces",
            json={"traces": [trace_payload(), {"inputTokens": -1}, trace_payload(id="r1", output="changed")]},
        )
    assert (one.status_code, batch.status_code, mixed.status_code) == (201, 201, 207)
    for response in (one, batch, mixed):
        _success_schema(doc, str(response.status_code)).validate(response.json())
    schemas = doc["components"]["schemas"]
    assert set(schemas["IngestedTrace"]["required"]) == {"id", "created"}
    assert {"results", "created", "refused"} <= set(schemas["BatchOutcomes"]["required"])
    results = mixed.json()["results"]
    assert [set(r) for r in results] == [{"index", "id", "created"}, {"index", "error"}, {"index", "error"}]
    assert [r.get("error", {}).get("code") for r in results] == [None, "invalid_argument", "conflict"]

"""list_traces, get_trace and trace_stats publish real output schemas, and real results satisfy them.

Each schema is checked as a JSON Schema 2020-12 document, must name its properties and which are required
(not the trivial "any object"), and validates what the tools return on real data — over the in-memory
client for breadth and over a real stdio server process. The REST OpenAPI document uses the same types.
"""

from __future__ import annotations

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


def _traces() -> list[dict[str, Any]]:
    """Rows of every shape: no prompt, unknown duration and cost, an error, tags or none, other models."""
    return [
        trace_payload(id="t-ok", createdAt="2026-03-01T10:15:00.123Z", output="parcel shipped é"),
        trace_payload(
            id="t-err",
            createdAt="2026-03-01T11:20:00Z",
            status="error",
            error={"type": "Timeout", "message": "model timed out"},
            output=None,
            tags=[],
        ),
        trace_payload(
            id="t-bare",
            createdAt="2026-03-01T12:00:00Z",
            promptName=None,
            promptVersion=None,
            cost=None,
            duration=None,
            model={"provider": "anthropic", "name": "claude-x"},
        ),
        trace_payload(id="t-v2", createdAt="2026-03-02T08:00:00Z", promptVersion=2, variables={"n": [1, {"a": None}]}),
    ]


async def _schemas(c: Client) -> dict[str, dict[str, Any]]:
    tools = {t.name: t for t in (await c.list_tools()).tools}
    return {name: tools[name].output_schema or {} for name in ("list_traces", "get_trace", "trace_stats")}


def _validator(schema: dict[str, Any]) -> Draft202012Validator:
    Draft202012Validator.check_schema(schema)
    assert schema != TRIVIAL and schema.get("properties"), schema
    return Draft202012Validator(schema)


async def test_the_schemas_name_their_properties_and_what_is_required(settings: Settings) -> None:
    async with Client(build_server(settings)) as c:
        schemas = await _schemas(c)
    for schema in schemas.values():
        _validator(schema)
    listing = schemas["list_traces"]
    assert set(listing["required"]) == {"traces", "nextCursor"}
    row = listing["$defs"]["TraceSummary"] if "$defs" in listing else listing["properties"]["traces"]["items"]
    assert set(row["required"]) == {
        "id",
        "createdAt",
        "promptName",
        "promptVersion",
        "model",
        "status",
        "totalTokens",
        "cost",
        "duration",
        "tags",
        "outputPreview",
    }
    assert row["properties"]["createdAt"]["type"] == "string"  # epoch ms inside, RFC 3339 on the wire
    assert row["additionalProperties"] is False
    assert set(schemas["trace_stats"]["required"]) == {"groupBy", "since", "until", "groups"}
    assert schemas["get_trace"]["required"] == ["id"]  # with `fields`, only the asked fields (and id) come
    assert {"manifest", "messages", "output", "replayable", "replayIssues"} <= set(schemas["get_trace"]["properties"])


async def test_real_results_validate_against_the_published_schemas(settings: Settings) -> None:
    with anyio.fail_after(30):
        async with Client(build_server(settings)) as c:
            for payload in _traces():
                await call(c, "ingest_trace", trace=payload)
            v = {name: _validator(s) for name, s in (await _schemas(c)).items()}
            pages = [
                await call(c, "list_traces"),
                await call(c, "list_traces", limit=1),
                await call(c, "list_traces", sort="cost", order="asc", status="error"),
                await call(c, "list_traces", query="parcel", since="2026-03-01T00:00:00Z"),
                await call(c, "list_traces", prompt_name="nothing-matches"),
            ]
            assert [len(p["traces"]) for p in pages] == [4, 1, 1, 1, 0]
            assert pages[1]["nextCursor"] and pages[0]["nextCursor"] is None
            for page in pages:
                v["list_traces"].validate(page)
            got = {r["id"]: r for r in pages[0]["traces"]}
            assert got["t-ok"]["createdAt"] == "2026-03-01T10:15:00.123Z"
            assert got["t-bare"]["cost"] is None and got["t-bare"]["duration"] is None
            assert got["t-err"]["outputPreview"] == "[Timeout] model timed out"

            for args in (
                {"trace_id": "t-ok"},
                {"trace_id": "t-bare"},
                {"trace_id": "t-err", "fields": ["error", "status"]},
                {"trace_id": "t-v2", "max_chars": 3},  # status "success" comes back cut: still valid
            ):
                v["get_trace"].validate(await call(c, "get_trace", **args))

            for group_by in ("prompt", "version", "model", "status"):
                stats = await call(c, "trace_stats", group_by=group_by, since="2026-03-01T10:30:00Z")
                assert stats["groups"], group_by
                v["trace_stats"].validate(stats)
            assert (await call(c, "trace_stats", since="24h"))["groups"] == []


async def test_the_schemas_refuse_results_of_another_shape(settings: Settings) -> None:
    """A schema that passes anything would pass these; the published ones must not."""
    async with Client(build_server(settings)) as c:
        await call(c, "ingest_trace", trace=trace_payload(id="t1"))
        v = {name: _validator(s) for name, s in (await _schemas(c)).items()}
        page = await call(c, "list_traces")
        stats = await call(c, "trace_stats", group_by="model")
    row = page["traces"][0]
    bad_pages = [
        {"traces": [{**row, "createdAt": 1772360100123}]},  # the inner time type leaking out
        {**page, "traces": [{**row, "extra": 1}]},
        {"traces": page["traces"]},  # nextCursor missing
        {**page, "traces": [{k: x for k, x in row.items() if k != "outputPreview"}]},
    ]
    for bad in bad_pages:
        assert not v["list_traces"].is_valid(bad), bad
    group = stats["groups"][0]
    assert not v["trace_stats"].is_valid({**stats, "groups": [{**group, "group": {"promptName": 3}}]})
    assert not v["trace_stats"].is_valid({**stats, "groups": [{**group, "p50Duration": "fast"}]})
    assert not v["get_trace"].is_valid({"output": "no id"})


async def test_a_real_stdio_server_returns_results_that_match_its_schemas(db_path: str) -> None:
    with anyio.fail_after(60):
        async with Client(server_params(db_path)) as c:
            for payload in _traces():
                await call(c, "ingest_trace", trace=payload)
            v = {name: _validator(s) for name, s in (await _schemas(c)).items()}
            v["list_traces"].validate(await call(c, "list_traces", limit=2))
            v["get_trace"].validate(await call(c, "get_trace", trace_id="t-err"))
            v["trace_stats"].validate(await call(c, "trace_stats", group_by="version"))


async def test_rest_answers_validate_against_the_openapi_response_schemas(settings: Settings) -> None:
    async with in_process(settings, "acme") as env:
        for payload in _traces():
            assert (await env.request("acme", "POST", "/traces", json=payload)).status_code == 201
        doc = (await env.client.get("/api/v1/openapi.json")).json()
        paths = doc["paths"]

        def validator(path: str) -> Draft202012Validator:
            ref = paths["/api/v1/tenants/{tenant}" + path]["get"]["responses"]["200"]["content"]["application/json"]
            schema = {**ref["schema"], "components": doc["components"]}
            Draft202012Validator.check_schema(schema)
            return Draft202012Validator(schema)

        for path, url, name in (
            ("/traces", "/traces?limit=2", "TraceList"),
            ("/traces/{trace_id}", "/traces/t-bare", "TraceView"),
            ("/traces/{trace_id}", "/traces/t-ok?fields=output&max_chars=2", "TraceView"),
            ("/stats", "/stats?group_by=model", "StatsResult"),
        ):
            answer = await env.request("acme", "GET", url)
            assert answer.status_code == 200, answer.text
            check = validator(path)
            assert check.schema["$ref"] == f"#/components/schemas/{name}"
            check.validate(answer.json())
            assert not check.is_valid({"unexpected": True})

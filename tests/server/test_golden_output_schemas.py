"""The golden tools publish real output schemas, and their real results validate against them.

Every golden tool is called over an MCP client on real data (prompt runs and replays through LiteLLM to the
local model server): pinned cases with a judge, a gate, a replay with several trials that regresses, one
stopped by its budget (its ``error`` and ``stopped``), one that passes. Each structured result is checked
with a JSON Schema 2020-12 validator against the schema ``tools/list`` published, and its text is the same JSON.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from jsonschema import Draft202012Validator
from mcp import Client

from agnt_traces.config import Settings
from agnt_traces.server.mcp import build_server
from golden_helpers import PHRASE, content_of, model_of, variables
from modelserver import ModelServer

pytestmark = pytest.mark.anyio

GOLDEN_TOOLS = ("pin_golden", "list_golden", "update_golden", "unpin_golden", "set_gate", "run_replay", "get_replay")
TRIVIAL = {"type": "object", "additionalProperties": True}


class Checked:
    """Calls tools and validates each structured result against the tool's published output schema."""

    def __init__(self, client: Client, schemas: dict[str, dict[str, Any]]) -> None:
        self.client = client
        self.schemas = schemas
        self.validated: dict[str, int] = {}

    async def __call__(self, tool: str, **args: Any) -> dict[str, Any]:
        result = await self.client.call_tool(tool, args)
        text = result.content[0].text if result.content else ""  # type: ignore[union-attr]
        assert not result.is_error, f"{tool} failed: {text}"
        structured = result.structured_content
        assert structured is not None and json.loads(text) == structured
        if tool in self.schemas:
            Draft202012Validator(self.schemas[tool]).validate(structured)
            self.validated[tool] = self.validated.get(tool, 0) + 1
        return structured


async def _finished(call: Checked, replay_id: str) -> dict[str, Any]:
    while True:
        view = await call("get_replay", replay_id=replay_id, wait_seconds=20)
        if view["status"] != "running":
            return view


async def test_every_golden_tool_result_validates_against_its_output_schema(
    db_path: str, model_server: ModelServer
) -> None:
    settings = Settings(db_path=db_path, tenant="default", model_timeout=5.0)
    with anyio.fail_after(150):
        async with Client(build_server(settings), mode="legacy") as c:
            tools = {t.name: t for t in (await c.list_tools()).tools}
            schemas: dict[str, dict[str, Any]] = {}
            for name in GOLDEN_TOOLS:
                schema = tools[name].output_schema
                assert schema is not None and schema != TRIVIAL, name
                Draft202012Validator.check_schema(schema)
                assert schema.get("properties") and schema.get("required"), name
                schemas[name] = schema
            call = Checked(c, schemas)

            await call("upsert_prompt", name="support", content=content_of(model_server))
            await call("publish_prompt", name="support")
            ids = [(await call("run_prompt", name="support", variables=variables(i)))["trace"]["id"] for i in range(3)]
            checks = [{"type": "contains", "value": PHRASE}, {"type": "max_tokens", "value": 400}]
            pinned = await call(
                "pin_golden",
                name="support",
                trace_ids=ids[:1],
                required=True,
                checks=[*checks, {"type": "json_schema", "value": {"type": "string"}}],
                judge={"rubric": "answers the question", "model": model_of(model_server)},
            )
            assert pinned["cases"][0]["judge"]["rubric"] == "answers the question"
            pinned = await call("pin_golden", name="support", filter={"status": "success", "limit": 3}, checks=checks)
            assert len(pinned["cases"]) == 3
            listed = await call("list_golden", name="support")
            assert listed["gate"] is None and listed["cases"][0]["referencePreview"].startswith("echo:")
            updated = await call("update_golden", name="support", case_id=pinned["cases"][0]["id"], required=True)
            assert updated["required"] is True and updated["judge"] is None
            gate = await call("set_gate", name="support", policy={"minPassRate": 0.5, "no_regressions": True})
            assert gate["gate"]["min_pass_rate"] == 0.5  # the policy's JSON names are snake_case
            assert (await call("list_golden", name="support"))["gate"] == gate["gate"]

            await call("upsert_prompt", name="support", content=content_of(model_server, with_signoff=False))
            started = await call("run_replay", name="support", trials=2)
            assert started["status"] == "running" and started["progress"] == {"done": 0, "total": 6}
            running = await call("get_replay", replay_id=started["id"])
            broken = await _finished(call, started["id"])
            assert running["id"] == broken["id"] and broken["status"] == "failed"
            assert broken["summary"]["regressions"] == 3 and "stopped" not in broken["summary"]
            assert all(len(case["trials"]) == 2 for case in broken["cases"]) and "error" not in broken

            stopped = await _finished(
                call, (await call("run_replay", name="support", fresh=True, budget_usd=1e-12))["id"]
            )
            assert stopped["status"] == "error" and stopped["summary"]["stopped"] == "budget"
            assert stopped["error"]["details"]["field"] == "budget_usd"

            await call("upsert_prompt", name="support", content=content_of(model_server, temperature=0.5))
            fixed = await _finished(call, (await call("run_replay", name="support"))["id"])
            assert fixed["status"] == "passed" and fixed["gate"]["passed"] and "trials" not in fixed["cases"][0]

            unpinned = await call("unpin_golden", name="support", case_ids=[pinned["cases"][0]["id"], "nope"])
            assert unpinned == {"removed": 1, "notFound": ["nope"]}
            assert (await call("set_gate", name="support", policy=None))["gate"] is None

    assert set(call.validated) == set(GOLDEN_TOOLS)

"""Publish without fear, end to end over stdio: a real ``agnt-traces serve`` subprocess, the SDK client, real
model calls through LiteLLM to the local model server."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from mcp import Client

from golden_helpers import PHRASE, content_of, variables
from mcp_helpers import call, call_error, server_params
from modelserver import ModelServer

pytestmark = pytest.mark.anyio


async def _finished(c: Client, replay_id: str) -> dict[str, Any]:
    while True:
        view = await call(c, "get_replay", replay_id=replay_id, wait_seconds=20)
        if view["status"] != "running":
            return view


async def test_golden_gate_over_stdio(db_path: str, model_server: ModelServer) -> None:
    with anyio.fail_after(150):
        async with Client(server_params(db_path), mode="legacy") as c:
            await call(c, "upsert_prompt", name="support", content=content_of(model_server))
            await call(c, "publish_prompt", name="support")
            ids = [
                (await call(c, "run_prompt", name="support", variables=variables(i)))["trace"]["id"] for i in range(20)
            ]
            pinned = await call(
                c,
                "pin_golden",
                name="support",
                filter={"status": "success", "limit": 20},
                required=True,
                checks=[{"type": "contains", "value": PHRASE}, {"type": "max_tokens", "value": 40}],
            )
            assert sorted(case["traceId"] for case in pinned["cases"]) == sorted(ids)
            assert len((await call(c, "list_golden", name="support"))["cases"]) == 20
            await call(c, "set_gate", name="support", policy={"required_pass": True, "no_regressions": True})

            # Break the draft: drop the block the check depends on.
            await call(c, "upsert_prompt", name="support", content=content_of(model_server, with_signoff=False))
            started = await call(c, "run_replay", name="support")
            assert started["status"] == "running" and started["progress"]["total"] == 20
            broken = await _finished(c, started["id"])
            assert broken["status"] == "failed"
            assert broken["summary"]["regressions"] == 20 and broken["summary"]["passed"] == 0
            worst = broken["cases"][0]
            assert worst["regression"] and worst["goldenTraceId"] in ids
            assert any(ch["type"] == "contains" and not ch["passed"] for ch in worst["checks"])
            assert (
                "-echo: Answer question" in worst["diff"]["unified"] and "+echo: Question" in worst["diff"]["unified"]
            )
            report = await c.read_resource(f"replays://{started['id']}")
            text = report.contents[0].text  # type: ignore[union-attr]
            assert "REGRESSION" in text and worst["caseId"] in text and len(text) <= 12_100

            refused = await call_error(c, "publish_prompt", name="support")
            assert refused["code"] == "conflict"
            assert refused["details"]["replayId"] == started["id"]
            assert refused["details"]["cases"][0]["diff"]["unified"]

            # Fix it (the sign-off comes back, worded for a new version): replay passes, publish goes through.
            fixed_content = content_of(model_server)
            fixed_content["blocks"][0]["content"] = "You answer for {{ company }}, briefly."
            draft = await call(c, "upsert_prompt", name="support", content=fixed_content)
            model_server.reset()
            fixed = await _finished(c, (await call(c, "run_replay", name="support"))["id"])
            assert fixed["status"] == "passed", fixed["gate"]
            assert fixed["summary"]["modelCalls"] == 20 and len(model_server.requests) == 20
            published = await call(c, "publish_prompt", name="support", expected_etag=draft["draftEtag"])
            assert published["version"] == 2 and published["gate"]["replayId"] == fixed["id"]
            prompt = await call(c, "get_prompt", name="support")
            assert prompt["versions"][-1]["gate"]["replayId"] == fixed["id"]
            assert prompt["versions"][-1]["gate"]["summary"]["passed"] == 20

            # A second identical replay makes no model call at all.
            model_server.reset()
            again = await _finished(c, (await call(c, "run_replay", name="support", against=2))["id"])
            assert again["status"] == "passed"
            assert again["summary"]["modelCalls"] == 0 and again["summary"]["cached"] == 20
            assert model_server.requests == []
            cached = await call(c, "get_trace", trace_id=again["cases"][0]["traceId"])
            assert cached["metadata"]["cached"] is True and cached["cost"] == 0 and cached["source"] == "replay"


async def test_replay_budget_over_stdio(db_path: str, model_server: ModelServer) -> None:
    with anyio.fail_after(90):
        async with Client(server_params(db_path), mode="legacy") as c:
            await call(c, "upsert_prompt", name="support", content=content_of(model_server))
            await call(c, "publish_prompt", name="support")
            traces = [(await call(c, "run_prompt", name="support", variables=variables(i)))["trace"] for i in range(8)]
            await call(c, "pin_golden", name="support", trace_ids=[t["id"] for t in traces])
            model_server.reset()
            budget = traces[0]["cost"] * 3
            started = await call(c, "run_replay", name="support", budget_usd=budget, fresh=True)
            view = await _finished(c, started["id"])
            assert view["status"] == "error"
            details = view["error"]["details"]
            assert details["spentUsd"] <= budget < details["spentUsd"] + details["estimateUsd"]
            assert 1 <= len(model_server.requests) < 8
            assert len(model_server.requests) == view["summary"]["modelCalls"]
            assert "budget" in view["error"]["message"]

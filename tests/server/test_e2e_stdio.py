"""The whole fix loop as an agent drives it: the SDK client speaking to ``agnt-traces serve`` over stdio,
real model calls through LiteLLM to the local OpenAI- and Anthropic-format server."""

from __future__ import annotations

import anyio
import pytest
import unidiff
from mcp import Client

from mcp_helpers import call, call_error, server_params
from modelserver import ModelServer

pytestmark = [pytest.mark.anyio, pytest.mark.both_stores]


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_trace_to_fix_in_one_conversation(db_path: str, model_server: ModelServer, mode: str) -> None:
    openai = {"provider": "openai", "name": "gpt-4o-mini", "params": {"api_base": model_server.openai_base}}
    claude = {
        "provider": "anthropic",
        "name": "claude-sonnet-4-5",
        "params": {"api_base": model_server.anthropic_base, "max_tokens": 300},
    }
    content = {
        "blocks": [
            {"id": "persona", "role": "system", "content": "You support {{ company_name }} customers."},
            {"id": "premium", "role": "system", "content": "Priority.", "condition": "tier == 'premium'"},
        ],
        "variables": [
            {"name": "company_name", "type": "string", "required": True},
            {"name": "tier", "type": "string", "default": "standard"},
        ],
        "model": openai,
    }
    question = [{"role": "user", "content": "My parcel is late"}]
    with anyio.fail_after(90):
        async with Client(server_params(db_path), mode=mode) as c:
            await call(c, "upsert_prompt", name="support", content=content)
            assert (await call(c, "publish_prompt", name="support"))["version"] == 1
            first = (
                await call(
                    c,
                    "run_prompt",
                    name="support",
                    messages=question,
                    variables={"company_name": "Acme", "tier": "premium"},
                )
            )["trace"]
            assert first["output"] == "echo: My parcel is late"

            found = await call(c, "list_traces", prompt_name="support", query="parcel")
            assert [r["id"] for r in found["traces"]] == [first["id"]]

            session = await call(c, "open_playground", trace_id=first["id"])
            sid = session["id"]
            assert session["inputMessages"] == question
            await call(
                c,
                "edit_block",
                session_id=sid,
                block_id="persona",
                content="You support {{ company_name }} customers. Quote the tracking number.",
            )
            await call(
                c,
                "edit_block",
                session_id=sid,
                block_id="apology",
                op="insert",
                after="persona",
                role="system",
                content="Apologise once for the delay.",
            )
            await call(c, "update_models", session_id=sid, models=[openai, claude])
            runs = (await call(c, "run_session", session_id=sid))["runs"]
            assert {r["model"] for r in runs} == {"openai/gpt-4o-mini", "anthropic/claude-sonnet-4-5"}
            assert all(r["status"] == "success" for r in runs)
            assert {r.path for r in model_server.requests} == {"/v1/chat/completions", "/v1/messages"}

            diff = await call(c, "diff_session", session_id=sid)
            patch = unidiff.PatchSet(diff["unified"])
            assert {"blocks/persona", "blocks/apology", "messages"} <= {p.path for p in patch}
            assert {m["model"] for m in diff["models"]} == {"openai/gpt-4o-mini", "anthropic/claude-sonnet-4-5"}
            assert all(m["deltas"]["inputTokens"] > 0 for m in diff["models"])

            saved = await call(c, "save_session", session_id=sid)
            assert saved["draftRevision"] == 2
            assert (await call(c, "publish_prompt", name="support"))["version"] == 2

            dt = await call(c, "diff_trace", trace_id=first["id"])
            assert dt["changed"] and dt["rendered"]["changed"]
            assert dt["trace"]["version"] == 1 and dt["against"]["version"] == 2

            second = (
                await call(c, "run_prompt", name="support", messages=question, variables={"company_name": "Acme"})
            )["trace"]
            assert second["promptVersion"] == 2
            assert "Quote the tracking number." in second["manifest"]["system"]
            err = await call_error(c, "save_session", session_id="missing")
            assert err["code"] == "not_found"


async def test_demo_runs_the_whole_loop_offline(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    from pathlib import Path

    from agnt_traces.demo import run_demo

    db = str(Path(str(tmp_path)) / "demo.db")
    with anyio.fail_after(60):
        result = await run_demo(db)
    out = capsys.readouterr().out
    assert result["version"] == 2
    for step in ("open_playground", "edit_block", "run_session", "diff_session", "save_session", "publish_prompt"):
        assert step in out
    assert "+++ b/blocks/order-number" in out

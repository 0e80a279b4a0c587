"""What lands in an agent's context and on its clock: bounded, unrepeated diffs, and progress that keeps a
client's request timeout alive while a slow model call runs."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import anyio
import pytest
import unidiff
from mcp import Client, StdioServerParameters

from agnt_traces.app import App
from agnt_traces.errors import InvalidArgument
from factories import trace_payload
from mcp_helpers import call, call_error
from modelserver import ModelServer

pytestmark = pytest.mark.anyio

AGNT = str(Path(sys.executable).parent / "agnt-traces")


def big_content(lines: int) -> dict[str, object]:
    return {
        "blocks": [
            {"id": f"b{i}", "role": "system", "content": "\n".join(f"rule {i}.{n}: be kind" for n in range(lines))}
            for i in range(6)
        ],
        "model": {"provider": "agnt-local", "name": "echo"},
    }


async def test_diff_trace_of_an_ingested_trace_is_small_and_does_not_show_the_prompt_as_added(app: App) -> None:
    await app.prompts.upsert("default", "support", big_content(40))
    await app.prompts.publish("default", "support")
    payload = trace_payload(output="ok")
    payload["promptName"] = "support"
    created = await app.traces.ingest("default", payload)

    diff = (await app.playground.diff_trace("default", created.id)).render()

    assert diff["trace"]["contentKnown"] is False
    assert diff["content"]["changed"] is None and "not stored" in diff["content"]["note"]
    paths = [f.path for f in unidiff.PatchSet(diff["unified"])]
    assert paths == ["messages"], paths  # the rendered diff only: no block shown as "added"
    assert {row["part"] for row in diff["summary"]} == {"messages"}
    # Nothing is said twice: the unified text appears once in the whole answer.
    assert json.dumps(diff).count(json.dumps(diff["unified"])[1:60]) == 1


async def test_diff_trace_is_bounded_by_max_chars_and_marks_what_it_left_out(app: App) -> None:
    await app.prompts.upsert("default", "support", big_content(40))
    await app.prompts.publish("default", "support")
    run = await app.prompts.run("default", "support", messages=[{"role": "user", "content": "hi"}])
    changed = big_content(40)
    for block in changed["blocks"]:  # type: ignore[attr-defined]
        block["content"] = block["content"].replace("kind", "brief")
    await app.prompts.upsert("default", "support", changed)

    full = (await app.playground.diff_trace("default", run["trace"]["id"], "draft", max_chars=None)).render()
    bounded = (await app.playground.diff_trace("default", run["trace"]["id"], "draft", max_chars=4000)).render()

    assert len(full["unified"]) > 4000 and "truncated" not in full
    assert len(bounded["unified"]) <= 4000
    kept = [f.path for f in unidiff.PatchSet(bounded["unified"])]  # still parses: whole files only
    assert kept and bounded["truncated"]["omittedFiles"]
    assert set(kept).isdisjoint(bounded["truncated"]["omittedFiles"])
    assert len(kept) + len(bounded["truncated"]["omittedFiles"]) == len(unidiff.PatchSet(full["unified"]))
    assert bounded["summary"] == full["summary"]  # the summary still counts every file
    assert bounded["truncated"]["omittedChars"] == len(full["unified"]) - len(bounded["unified"])

    with pytest.raises(InvalidArgument) as err:
        (await app.playground.diff_trace("default", run["trace"]["id"], "draft", max_chars=0)).render()
    assert err.value.details["field"] == "max_chars"


async def test_diff_tools_default_to_a_bound_an_agent_can_afford(app: App) -> None:
    await app.prompts.upsert("default", "support", big_content(400))
    await app.prompts.publish("default", "support")
    run = await app.prompts.run("default", "support", messages=[{"role": "user", "content": "hi"}])
    changed = big_content(400)
    for block in changed["blocks"]:  # type: ignore[attr-defined]
        block["content"] = block["content"].replace("kind", "brief")
    await app.prompts.upsert("default", "support", changed)
    session = (await app.playground.open("default", run["trace"]["id"])).render()
    for i in range(6):
        (await app.playground.edit_block("default", session["id"], f"b{i}", "update", content=f"short {i}")).render()

    diff_t = (await app.playground.diff_trace("default", run["trace"]["id"], "draft")).render()
    diff_s = (await app.playground.diff("default", session["id"])).render()

    for diff in (diff_t, diff_s):
        assert len(json.dumps(diff)) < 60_000
        assert diff["truncated"]["omittedFiles"]


def stdio(db_path: str, model_server: ModelServer) -> StdioServerParameters:
    return StdioServerParameters(
        command=AGNT,
        args=["serve", "--db", db_path],
        env={
            "AGNT_TRACES_LOG_LEVEL": "WARNING",
            "AGNT_TRACES_MODEL_ENDPOINTS": model_server.openai_base,
            "PATH": "/usr/bin:/bin",
        },
    )


async def test_run_session_sends_progress_while_a_slow_model_call_runs(db_path: str, model_server: ModelServer) -> None:
    content = {
        "blocks": [{"id": "ask", "role": "user", "content": "hello"}],
        "model": {"provider": "openai", "name": "mock-slow-7", "params": {"api_base": model_server.openai_base}},
    }
    seen: list[tuple[float, float]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((time.monotonic(), progress))

    with anyio.fail_after(90):
        async with Client(stdio(db_path, model_server)) as c:
            await call(c, "upsert_prompt", name="slow", content=content)
            first = await call(c, "run_prompt", name="slow", label="draft")
            session = await call(c, "open_playground", trace_id=first["trace"]["id"])
            started = time.monotonic()
            result = await c.call_tool("run_session", {"session_id": session["id"]}, progress_callback=on_progress)
            assert not result.is_error
    gaps = [b - a for a, b in zip([started] + [t for t, _ in seen], [t for t, _ in seen], strict=False)]
    assert len(seen) >= 2, seen  # heartbeats during the 7 s call, not only at its end
    assert max(gaps) < 6, gaps
    values = [p for _, p in seen]
    assert values == sorted(values) and len(set(values)) == len(values)  # MCP: progress always increases


async def test_diff_session_max_chars_is_refused_out_of_range_over_mcp(db_path: str, model_server: ModelServer) -> None:
    with anyio.fail_after(60):
        async with Client(stdio(db_path, model_server)) as c:
            created = await call(c, "ingest_trace", trace=trace_payload())
            session = await call(c, "open_playground", trace_id=created["id"])
            result = await c.call_tool("diff_session", {"session_id": session["id"], "max_chars": 0})
            assert result.is_error
            ok = await call(c, "diff_session", session_id=session["id"], max_chars=50)
            assert len(ok["unified"]) <= 50
            err = await call_error(c, "get_trace", trace_id="missing")
            assert err["code"] == "not_found"

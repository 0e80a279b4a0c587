"""The closed loop: sessions, edits, runs on real (local) models, diffs, save with conflicts."""

from __future__ import annotations

import anyio
import pytest
import unidiff

from agnt_traces.app import App, open_app
from agnt_traces.config import Settings
from agnt_traces.errors import CompileError, Conflict, InvalidArgument, NotFound
from agnt_traces.services.queries import TraceQuery
from factories import trace_payload
from modelserver import ModelServer

pytestmark = [pytest.mark.anyio, pytest.mark.both_stores]


def content(server: ModelServer) -> dict[str, object]:
    return {
        "blocks": [
            {"id": "intro", "role": "system", "content": "You help customers of {{ company_name }}."},
            {"id": "premium", "role": "system", "content": "Premium customer.", "condition": "tier == 'premium'"},
            {"id": "context", "role": "user", "content": "Order {{ order_id }}"},
        ],
        "variables": [
            {"name": "company_name", "type": "string", "required": True},
            {"name": "tier", "type": "string", "default": "standard"},
            {"name": "order_id", "type": "integer", "required": True},
        ],
        "model": {"provider": "openai", "name": "gpt-4o-mini", "params": {"api_base": server.openai_base}},
    }


def anthropic(server: ModelServer) -> dict[str, object]:
    return {
        "provider": "anthropic",
        "name": "claude-sonnet-4-5",
        "params": {"api_base": server.anthropic_base, "max_tokens": 200},
    }


async def seeded(app: App, server: ModelServer) -> dict[str, object]:
    await app.prompts.upsert("default", "support", content(server))
    await app.prompts.publish("default", "support")
    run = await app.prompts.run(
        "default",
        "support",
        variables={"company_name": "Acme", "tier": "premium", "order_id": 42},
        messages=[{"role": "user", "content": "Where is my parcel?"}],
    )
    return run["trace"]  # type: ignore[no-any-return]


async def test_open_loads_the_exact_version_variables_model_and_input_messages(
    app: App, model_server: ModelServer
) -> None:
    trace = await seeded(app, model_server)
    # The draft moves on after the call: the session must still load what produced the trace.
    changed = content(model_server)
    changed["blocks"][0]["content"] = "Totally different."  # type: ignore[index]
    await app.prompts.upsert("default", "support", changed)
    s = (await app.playground.open("default", trace["id"])).render()
    assert [b["id"] for b in s["blocks"]] == ["intro", "premium", "context"]
    assert s["blocks"][0]["content"] == "You help customers of {{ company_name }}."
    assert s["variables"]["values"] == {"company_name": "Acme", "tier": "premium", "order_id": 42}
    assert s["models"] == [
        {"provider": "openai", "name": "gpt-4o-mini", "params": {"api_base": model_server.openai_base}}
    ]
    assert s["inputMessages"] == [{"role": "user", "content": "Where is my parcel?"}]
    assert s["baseEtag"] == trace["etag"] and s["baseVersion"] == 1 and s["baseRevision"] == 2
    compiled = (await app.playground.compile("default", s["id"])).render()
    assert compiled["messages"] == trace["messages"]
    assert compiled["manifest"]["system"] == trace["manifest"]["system"]
    assert compiled["estimates"][0]["inputTokens"] > 0


async def test_edit_block_every_op_and_bad_edits_change_nothing(app: App, model_server: ModelServer) -> None:
    trace = await seeded(app, model_server)
    sid = ((await app.playground.open("default", trace["id"])).render())["id"]
    pg = app.playground
    s = (await pg.edit_block("default", sid, "intro", content="Be brief. {{ company_name }}.")).render()
    assert s["blocks"][0]["content"] == "Be brief. {{ company_name }}."
    s = (
        await pg.edit_block("default", sid, "tone", "insert", content="Be kind.", role="system", after="intro")
    ).render()
    assert [b["id"] for b in s["blocks"]] == ["intro", "tone", "premium", "context"]
    s = (await pg.edit_block("default", sid, "first", "insert", content="Hi", role="system")).render()
    assert s["blocks"][0]["id"] == "first"
    s = (await pg.edit_block("default", sid, "first", "move", after="context")).render()
    assert [b["id"] for b in s["blocks"]] == ["intro", "tone", "premium", "context", "first"]
    s = (await pg.edit_block("default", sid, "first", "delete")).render()
    s = (await pg.edit_block("default", sid, "premium", condition="")).render()
    assert s["blocks"][2]["condition"] is None
    before = (await pg.get("default", sid)).render()
    with pytest.raises(NotFound, match="nope"):
        (await pg.edit_block("default", sid, "nope", content="x")).render()
    with pytest.raises(Conflict, match="already exists"):
        (await pg.edit_block("default", sid, "tone", "insert", content="x")).render()
    with pytest.raises(CompileError, match="intro"):
        (await pg.edit_block("default", sid, "intro", content="{% for %}")).render()
    with pytest.raises(CompileError):
        (await pg.edit_block("default", sid, "intro", condition="a ==")).render()
    with pytest.raises(InvalidArgument):
        (await pg.edit_block("default", sid, "Bad Id", "insert", content="x")).render()
    with pytest.raises(NotFound, match="after"):
        (await pg.edit_block("default", sid, "tone", "move", after="missing")).render()
    after = (await pg.get("default", sid)).render()
    assert after["blocks"] == before["blocks"] and after["revision"] == before["revision"]


async def test_variables_and_models(app: App, model_server: ModelServer) -> None:
    trace = await seeded(app, model_server)
    sid = ((await app.playground.open("default", trace["id"])).render())["id"]
    pg = app.playground
    s = (await pg.update_variables("default", sid, {"tier": None, "order_id": 7})).render()
    assert s["variables"]["values"] == {"company_name": "Acme", "order_id": 7}
    with pytest.raises(InvalidArgument, match="order_id"):
        (await pg.update_variables("default", sid, {"order_id": "seven"})).render()
    assert ((await pg.get("default", sid)).render())["variables"]["values"]["order_id"] == 7
    with pytest.raises(InvalidArgument, match="1 to 8"):
        (await pg.update_models("default", sid, [])).render()
    with pytest.raises(InvalidArgument, match="1 to 8"):
        (await pg.update_models("default", sid, [{"provider": "openai", "name": f"m{i}"} for i in range(9)])).render()
    with pytest.raises(InvalidArgument, match="api_key"):
        (
            await pg.update_models("default", sid, [{"provider": "openai", "name": "m", "params": {"api_key": "sk-x"}}])
        ).render()
    s = (await pg.update_models("default", sid, [s["models"][0], anthropic(model_server)])).render()
    assert len(s["models"]) == 2


async def test_run_on_two_models_diff_save_publish(app: App, model_server: ModelServer) -> None:
    trace = await seeded(app, model_server)
    pg = app.playground
    sid = ((await pg.open("default", trace["id"])).render())["id"]
    (
        await pg.edit_block("default", sid, "intro", content="You help customers of {{ company_name }}. Be brief.")
    ).render()
    (await pg.edit_block("default", sid, "ask", "insert", after="context", content="Question follows.")).render()
    s = (await pg.get("default", sid)).render()
    (await pg.update_models("default", sid, [s["models"][0], anthropic(model_server)])).render()
    progress: list[tuple[int, int]] = []

    async def on_progress(done: int, total: int, message: str) -> None:
        progress.append((done, total))

    runs = ((await pg.run("default", sid, on_progress)).render())["runs"]
    assert sorted(r["model"] for r in runs) == ["anthropic/claude-sonnet-4-5", "openai/gpt-4o-mini"]
    assert all(r["status"] == "success" for r in runs)
    assert sorted(progress) == [(1, 2), (2, 2)]
    paths = sorted(r.path for r in model_server.requests[1:])
    assert paths == ["/v1/chat/completions", "/v1/messages"]
    for r in runs:
        t = await app.traces.get("default", r["traceId"])
        assert (t.source, t.session_id, t.parent_trace_id) == ("playground", sid, trace["id"])
        assert (await app.store.get_content("default", t.etag or "")) is not None
    page = (await app.traces.list("default", TraceQuery(session_id=sid))).render()
    assert len(page["traces"]) == 2

    diff = (await pg.diff("default", sid)).render()
    assert diff["changed"]
    parts = {(row["part"], row["id"], row["change"]) for row in diff["summary"]}
    assert ("block", "intro", "modified") in parts and ("block", "ask", "added") in parts
    assert ("messages", None, "modified") in parts
    files = {p.path for p in unidiff.PatchSet(diff["unified"])}
    assert {"blocks/intro", "blocks/ask", "messages"} <= files
    by_model = {m["model"]: m for m in diff["models"]}
    assert by_model["openai/gpt-4o-mini"]["deltas"]["inputTokens"] > 0  # longer prompt, more tokens
    assert set(by_model["anthropic/claude-sonnet-4-5"]["deltas"]) == {
        "inputTokens",
        "outputTokens",
        "totalTokens",
        "cost",
        "duration",
    }

    saved = (await pg.save("default", sid)).render()
    assert saved["draftRevision"] == 2 and not saved["created"]
    draft = await app.prompts.get("default", "support")
    assert [b["id"] for b in draft["content"]["blocks"]] == ["intro", "premium", "context", "ask"]
    assert draft["content"]["model"]["name"] == "gpt-4o-mini"  # the first model is the prompt's model
    v2 = await app.prompts.publish("default", "support")
    assert v2["version"] == 2
    dt = (await pg.diff_trace("default", trace["id"])).render()
    assert dt["against"]["version"] == 2 and dt["trace"]["version"] == 1
    assert dt["changed"] and dt["rendered"]["changed"]
    assert ((await pg.diff_trace("default", trace["id"], against=1)).render())["changed"] is False
    rerun = await app.prompts.run("default", "support", variables={"company_name": "Acme", "order_id": 1})
    assert rerun["trace"]["promptVersion"] == 2


async def test_second_save_from_the_same_trace_conflicts_and_changes_nothing(
    app: App, model_server: ModelServer
) -> None:
    trace = await seeded(app, model_server)
    pg = app.playground
    a = ((await pg.open("default", trace["id"])).render())["id"]
    b = ((await pg.open("default", trace["id"])).render())["id"]
    (await pg.edit_block("default", a, "intro", content="Edit A {{ company_name }}")).render()
    (await pg.edit_block("default", b, "intro", content="Edit B {{ company_name }}")).render()
    (await pg.save("default", a)).render()
    with pytest.raises(Conflict) as exc:
        (await pg.save("default", b)).render()
    assert "Edit B" in exc.value.details["diff"]["unified"]
    draft = await app.prompts.get("default", "support")
    assert draft["content"]["blocks"][0]["content"] == "Edit A {{ company_name }}"
    forced = (await pg.save("default", b, force=True)).render()
    assert forced["draftRevision"] == draft["draftRevision"] + 1
    # A session that saved can save again without conflict.
    (await pg.edit_block("default", a, "intro", content="Edit A2 {{ company_name }}")).render()
    with pytest.raises(Conflict):
        (await pg.save("default", a)).render()  # b's forced save moved the draft after a's save


async def test_session_survives_a_restart(settings: Settings, model_server: ModelServer) -> None:
    async with open_app(settings) as app:
        trace = await seeded(app, model_server)
        sid = ((await app.playground.open("default", trace["id"])).render())["id"]
        (await app.playground.edit_block("default", sid, "intro", content="Kept {{ company_name }}")).render()
        (await app.playground.run("default", sid)).render()
    async with open_app(settings) as app:
        s = (await app.playground.get("default", sid)).render()
        assert s["blocks"][0]["content"] == "Kept {{ company_name }}"
        assert len(s["runs"]) == 1
        assert ((await app.playground.save("default", sid)).render())["draftRevision"] == 2


async def test_rate_limited_once_then_success_is_one_run_and_one_trace(app: App, model_server: ModelServer) -> None:
    trace = await seeded(app, model_server)
    sid = ((await app.playground.open("default", trace["id"])).render())["id"]
    model_server.script(["429", "ok"])
    (run,) = ((await app.playground.run("default", sid)).render())["runs"]
    assert run["status"] == "success"
    t = await app.traces.get("default", run["traceId"])
    assert t.model.metadata.get("attempts") == 2
    assert len((await app.traces.list("default", TraceQuery(session_id=sid))).render()["traces"]) == 1


async def test_one_failing_model_does_not_sink_the_others(app: App, model_server: ModelServer) -> None:
    trace = await seeded(app, model_server)
    sid = ((await app.playground.open("default", trace["id"])).render())["id"]
    s = (await app.playground.get("default", sid)).render()
    broken = {"provider": "openai", "name": "mock-fail-400", "params": {"api_base": model_server.openai_base}}
    (await app.playground.update_models("default", sid, [s["models"][0], broken])).render()
    runs = {r["model"]: r for r in ((await app.playground.run("default", sid)).render())["runs"]}
    assert runs["openai/gpt-4o-mini"]["status"] == "success"
    assert runs["openai/mock-fail-400"]["status"] == "error"
    assert runs["openai/mock-fail-400"]["traceId"]


async def test_concurrent_runs_on_one_session_keep_every_run(app: App, model_server: ModelServer) -> None:
    trace = await seeded(app, model_server)
    sid = ((await app.playground.open("default", trace["id"])).render())["id"]
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(app.playground.run, "default", sid)
            tg.start_soon(lambda: app.playground.edit_block("default", sid, "intro", content="Edited meanwhile."))
    s = (await app.playground.get("default", sid)).render()
    assert len(s["runs"]) == 5 and len({r["traceId"] for r in s["runs"]}) == 5
    assert s["blocks"][0]["content"] == "Edited meanwhile."


async def test_concurrent_edits_are_all_kept(app: App, model_server: ModelServer) -> None:
    trace = await seeded(app, model_server)
    sid = ((await app.playground.open("default", trace["id"])).render())["id"]
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for i in range(6):
                tg.start_soon(lambda i=i: app.playground.edit_block("default", sid, f"b{i}", "insert", content=str(i)))
    ids = [b["id"] for b in ((await app.playground.get("default", sid)).render())["blocks"]]
    assert sorted(i for i in ids if i.startswith("b")) == [f"b{i}" for i in range(6)]


async def test_literal_trace_opens_as_blocks_and_needs_a_prompt_name(app: App) -> None:
    ingested = await app.traces.ingest(
        "default",
        trace_payload(
            promptName=None,
            manifest={"system": "Be {{ careful }}."},
            messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
            model={"provider": "agnt-local", "name": "echo"},
        ),
    )
    s = (await app.playground.open("default", ingested.id)).render()
    assert [(b["id"], b["role"]) for b in s["blocks"]] == [("system", "system"), ("m1", "user"), ("m2", "assistant")]
    compiled = (await app.playground.compile("default", s["id"])).render()
    assert compiled["manifest"]["system"] == "Be {{ careful }}."  # literal text, not a template
    with pytest.raises(InvalidArgument, match="prompt_name"):
        (await app.playground.save("default", s["id"])).render()
    saved = (await app.playground.save("default", s["id"], prompt_name="imported")).render()
    assert saved["created"] and saved["draftRevision"] == 1


async def test_idle_sessions_expire(db_path: str, model_server: ModelServer) -> None:
    async with open_app(Settings(db_path=db_path, session_idle_seconds=0.05)) as app:
        trace = await seeded(app, model_server)
        sid = ((await app.playground.open("default", trace["id"])).render())["id"]
        await anyio.sleep(0.1)
        with pytest.raises(NotFound, match="expire"):
            (await app.playground.get("default", sid)).render()


async def test_sessions_are_per_tenant(app: App, model_server: ModelServer) -> None:
    trace = await seeded(app, model_server)
    sid = ((await app.playground.open("default", trace["id"])).render())["id"]
    with pytest.raises(NotFound):
        (await app.playground.get("other", sid)).render()
    with pytest.raises(NotFound):
        (await app.playground.open("other", trace["id"])).render()
    assert ((await app.playground.list("other")).render())["sessions"] == []
    assert [s["id"] for s in ((await app.playground.list("default")).render())["sessions"]] == [sid]
    (await app.playground.delete("default", sid)).render()
    with pytest.raises(NotFound):
        (await app.playground.get("default", sid)).render()


async def test_a_new_variable_can_be_declared_in_the_session_and_saved(app: App, model_server: ModelServer) -> None:
    trace = await seeded(app, model_server)
    pg = app.playground
    sid = ((await pg.open("default", trace["id"])).render())["id"]
    (
        await pg.edit_block(
            "default", sid, "sla", "insert", after="intro", role="system", content="Reply within {{ sla_hours }} h."
        )
    ).render()
    with pytest.raises(InvalidArgument, match="sla_hours"):
        (
            await pg.update_variables(
                "default",
                sid,
                {"sla_hours": "soon"},
                declarations=[{"name": "sla_hours", "type": "integer", "required": True}],
            )
        ).render()
    s = (
        await pg.update_variables(
            "default", sid, {"sla_hours": 4}, declarations=[{"name": "sla_hours", "type": "integer", "required": True}]
        )
    ).render()
    assert s["variables"]["values"]["sla_hours"] == 4
    assert ((await pg.compile("default", sid)).render())["manifest"]["system"].count("Reply within 4 h.") == 1
    with pytest.raises(InvalidArgument):
        (await pg.update_variables("default", sid, {}, declarations=[{"name": "x", "type": "decimal"}])).render()
    (await pg.save("default", sid)).render()
    draft = await app.prompts.get("default", "support")
    assert {"name": "sla_hours", "type": "integer", "required": True, "default": None, "description": ""} in draft[
        "content"
    ]["variables"]

"""The prompt registry and prompt runs, through the services and the MCP tools."""

from __future__ import annotations

import pytest
from mcp import Client

from agnt_traces.app import App
from agnt_traces.config import Settings
from agnt_traces.errors import CompileError, Conflict, InvalidArgument, ModelError, NotFound
from agnt_traces.server.mcp import build_server
from mcp_helpers import call, call_error
from modelserver import ModelServer, expected_usage

pytestmark = [pytest.mark.anyio, pytest.mark.both_stores]


def content(server: ModelServer | None = None, **model: object) -> dict[str, object]:
    params: dict[str, object] = {"api_base": server.openai_base} if server else {}
    return {
        "blocks": [
            {"id": "intro", "role": "system", "content": "You help customers of {{ company_name }}."},
            {"id": "premium", "role": "system", "content": "Premium customer.", "condition": "tier == 'premium'"},
        ],
        "variables": [
            {"name": "company_name", "type": "string", "required": True},
            {"name": "tier", "type": "string", "default": "standard"},
        ],
        "model": {"provider": "openai", "name": "gpt-4o-mini", "params": params, **model},
    }


async def test_draft_versions_labels_and_history(app: App) -> None:
    p = app.prompts
    created = await p.upsert("default", "support", content())
    assert created["draftRevision"] == 1 and created["latestVersion"] is None
    same = await p.upsert("default", "support", content())
    assert same["draftRevision"] == 1  # the same content again is not a new revision
    v1 = await p.publish("default", "support", note="first")
    assert (v1["version"], v1["labels"]) == (1, {"production": 1})
    with pytest.raises(Conflict, match="nothing to publish"):
        await p.publish("default", "support")
    changed = content()
    changed["blocks"][0]["content"] = "You help {{ company_name }} customers politely."  # type: ignore[index]
    await p.upsert("default", "support", changed)
    v2 = await p.publish("default", "support")
    assert v2["version"] == 2 and v2["etag"] != v1["etag"]
    rollback = await p.publish("default", "support", version=1)
    assert rollback["labels"] == {"production": 1}
    got = await p.get("default", "support", label="production")
    assert got["version"] == 1 and got["etag"] == v1["etag"]
    assert [h["version"] for h in got["history"]] == [1, 2, 1]
    # The draft still holds v2's content; publishing it moves production back to v2, no new version.
    again = await p.publish("default", "support")
    assert again["version"] == 2 and [v["version"] for v in again_versions(await p.get("default", "support"))] == [1, 2]
    assert (await p.get("default", "support", version=2))["content"]["blocks"][0]["content"].endswith("politely.")


def again_versions(got: dict[str, object]) -> list[dict[str, int]]:
    return got["versions"]  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("name", "body", "error", "fragment"),
    [
        ("Bad Name", content(), InvalidArgument, "name"),
        ("ok", {**content(), "blocks": [{"id": "a"}, {"id": "a"}]}, InvalidArgument, "duplicate block id"),
        ("ok", {**content(), "blocks": [{"id": "Has Space"}]}, InvalidArgument, "block id"),
        ("ok", {**content(), "blocks": [{"id": "a", "condition": "tier =="}]}, CompileError, "a"),
        ("ok", {**content(), "blocks": [{"id": "a", "content": "{% if %}"}]}, CompileError, "a"),
        (
            "ok",
            {**content(), "model": {"provider": "openai", "name": "x", "params": {"api_key": "sk-1"}}},
            InvalidArgument,
            "api_key",
        ),
        ("ok", {**content(), "varaibles": []}, InvalidArgument, "varaibles"),
    ],
)
async def test_bad_prompts_are_refused_and_change_nothing(
    app: App, name: str, body: dict[str, object], error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error) as exc:
        await app.prompts.upsert("default", name, body)
    assert fragment in str(exc.value)
    assert (await app.prompts.list("default"))["prompts"] == []


async def test_unknown_prompt_version_and_label_are_not_found(app: App) -> None:
    with pytest.raises(NotFound, match="list_prompts"):
        await app.prompts.get("default", "nope")
    await app.prompts.upsert("default", "support", content())
    with pytest.raises(NotFound, match="version 3"):
        await app.prompts.get("default", "support", version=3)
    with pytest.raises(NotFound, match="label 'staging'"):
        await app.prompts.get("default", "support", label="staging")
    with pytest.raises(NotFound, match="production"):
        await app.prompts.run("default", "support", variables={"company_name": "Acme"})


async def test_run_prompt_records_the_exact_call(app: App, model_server: ModelServer) -> None:
    await app.prompts.upsert("default", "support", content(model_server))
    await app.prompts.publish("default", "support")
    result = await app.prompts.run(
        "default",
        "support",
        variables={"company_name": "Acme", "tier": "premium"},
        messages=[{"role": "user", "content": "Where is my refund?"}],
        tags=["t1"],
        metadata={"user": "u1"},
    )
    trace = result["trace"]
    (req,) = model_server.requests
    tin, tout = expected_usage(req.body)
    assert req.body["messages"][0] == {"role": "system", "content": "You help customers of Acme.\n\nPremium customer."}
    assert trace["output"] == "echo: Where is my refund?"
    assert (trace["inputTokens"], trace["outputTokens"], trace["totalTokens"]) == (tin, tout, tin + tout)
    assert trace["cost"] is not None and trace["cost"] > 0  # gpt-4o-mini is in LiteLLM's price map
    assert trace["promptName"] == "support" and trace["promptVersion"] == 1 and trace["source"] == "run"
    assert trace["variables"] == {"company_name": "Acme", "tier": "premium"}
    assert trace["messages"] == [{"role": "user", "content": "Where is my refund?"}]
    assert trace["manifest"]["system"] == "You help customers of Acme.\n\nPremium customer."
    assert trace["tags"] == ["t1"] and trace["metadata"] == {"user": "u1"}
    stored = await app.traces.get("default", trace["id"])
    assert stored.to_json() == trace
    # The content it was compiled from is kept by etag.
    assert (await app.store.get_content("default", trace["etag"])) is not None


async def test_run_prompt_draft_and_compile_errors(app: App, model_server: ModelServer) -> None:
    await app.prompts.upsert("default", "support", content(model_server))
    with pytest.raises(CompileError) as exc:
        await app.prompts.run("default", "support", label="draft", variables={"tier": 3})
    assert "company_name" in exc.value.message and "intro" in exc.value.message
    assert model_server.requests == []
    assert (await app.traces.list("default", _q())).render()["traces"] == []
    ok = await app.prompts.run("default", "support", label="draft", variables={"company_name": "A"})
    assert ok["trace"]["promptVersion"] is None  # the draft is not a version


async def test_failed_model_call_is_recorded_and_reported(app: App, model_server: ModelServer) -> None:
    await app.prompts.upsert("default", "support", content(model_server, name="mock-fail-401"))
    with pytest.raises(ModelError) as exc:
        await app.prompts.run("default", "support", label="draft", variables={"company_name": "A"})
    trace_id = exc.value.details["traceId"]
    trace = await app.traces.get("default", trace_id)
    assert trace.status == "error" and trace.error is not None
    assert "sk-" not in trace.error.message and "sk-" not in exc.value.message
    assert len(model_server.requests) == 1  # 401 is never retried


async def test_anthropic_format_through_the_same_path(app: App, model_server: ModelServer) -> None:
    body = content()
    body["model"] = {
        "provider": "anthropic",
        "name": "claude-sonnet-4-5",
        "params": {"api_base": model_server.anthropic_base, "max_tokens": 100},
    }
    await app.prompts.upsert("default", "support", body)
    result = await app.prompts.run(
        "default",
        "support",
        label="draft",
        variables={"company_name": "A"},
        messages=[{"role": "user", "content": "hi there"}],
    )
    (req,) = model_server.requests
    assert req.path == "/v1/messages"
    assert result["trace"]["output"] == "echo: hi there"
    assert result["trace"]["model"]["provider"] == "anthropic"
    tin, tout = expected_usage(req.body)
    assert result["trace"]["inputTokens"] == tin and result["trace"]["outputTokens"] == tout


async def test_prompt_tools_over_mcp(settings: Settings, model_server: ModelServer) -> None:
    async with Client(build_server(settings)) as c:
        await call(c, "upsert_prompt", name="support", content=content(model_server))
        listed = await call(c, "list_prompts")
        assert [p["name"] for p in listed["prompts"]] == ["support"]
        assert (await call(c, "publish_prompt", name="support"))["version"] == 1
        run = await call(
            c,
            "run_prompt",
            name="support",
            variables={"company_name": "Acme"},
            messages=[{"role": "user", "content": "hello"}],
        )
        assert run["trace"]["output"] == "echo: hello"
        got = await call(c, "get_prompt", name="support", label="production")
        assert got["version"] == 1
        err = await call_error(c, "get_prompt", name="support", version=9)
        assert err["code"] == "not_found"
        err = await call_error(c, "run_prompt", name="support", variables={})
        assert err["code"] == "compile_error" and "company_name" in err["message"]
        res = await c.read_resource("prompts://support/versions/1")
        assert '"version": 1' in res.contents[0].text  # type: ignore[union-attr]


def _q() -> object:
    from agnt_traces.services.queries import TraceQuery

    return TraceQuery()

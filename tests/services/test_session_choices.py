"""A session refuses what it cannot honour, at the call, and never replaces a draft by accident."""

from __future__ import annotations

import pytest

from agnt_traces.app import App
from agnt_traces.errors import Conflict, InvalidArgument
from factories import trace_payload

pytestmark = pytest.mark.anyio

FIVE_BLOCKS = {
    "blocks": [{"id": f"b{i}", "role": "system", "content": f"rule {i} for {{{{ v{i} }}}}"} for i in range(5)],
    "variables": [{"name": f"v{i}", "type": "string", "default": "x"} for i in range(5)],
    "model": {"provider": "agnt-local", "name": "echo"},
}


async def literal_session(app: App) -> dict[str, object]:
    """A session opened from an ingested trace of 'support', whose content this server never stored."""
    created = await app.traces.ingest("default", trace_payload(messages=[{"role": "user", "content": "hi"}]))
    return (await app.playground.open("default", created.id)).render()


async def test_saving_a_literal_session_over_a_draft_says_what_it_would_replace_and_changes_nothing(app: App) -> None:
    await app.prompts.upsert("default", "support", FIVE_BLOCKS)
    before = await app.prompts.get("default", "support")
    session = await literal_session(app)

    with pytest.raises(Conflict) as err:
        (await app.playground.save("default", str(session["id"]))).render()
    message = err.value.message
    assert "not stored" in message and "5 blocks, 5 variables" in message and "replace_draft=true" in message
    assert "?" not in message.split("(")[0] and "force" not in message  # no false revision, no retry hint
    assert err.value.details["field"] == "replace_draft"
    # force settles a concurrent edit; it does not replace other content.
    with pytest.raises(Conflict):
        (await app.playground.save("default", str(session["id"]), force=True)).render()
    assert await app.prompts.get("default", "support") == before

    saved = (await app.playground.save("default", str(session["id"]), replace_draft=True)).render()
    assert saved["draftRevision"] == before["draftRevision"] + 1
    after = await app.prompts.get("default", "support")
    assert [b["id"] for b in after["content"]["blocks"]] != [b["id"] for b in before["content"]["blocks"]]


async def test_a_literal_session_saves_to_a_new_prompt_and_then_like_any_other(app: App) -> None:
    session = await literal_session(app)
    first = (await app.playground.save("default", str(session["id"]), prompt_name="support-v2")).render()
    assert first["created"] is True
    (await app.playground.edit_block("default", str(session["id"]), "m1", "update", content="hello again")).render()
    second = (await app.playground.save("default", str(session["id"]), prompt_name="support-v2")).render()
    assert second["draftRevision"] == first["draftRevision"] + 1


async def test_update_variables_refuses_an_undeclared_name_and_names_the_declared_ones(app: App) -> None:
    await app.prompts.upsert("default", "greet", FIVE_BLOCKS)
    await app.prompts.publish("default", "greet")
    run = await app.prompts.run("default", "greet", messages=[{"role": "user", "content": "hi"}])
    session = (await app.playground.open("default", run["trace"]["id"])).render()

    with pytest.raises(InvalidArgument) as err:
        (await app.playground.update_variables("default", session["id"], {"v9": "typo"})).render()
    assert "'v9'" in err.value.message and "v0, v1, v2, v3, v4" in err.value.message
    assert err.value.details["undeclared"] == ["v9"]
    assert ((await app.playground.get("default", session["id"])).render())["variables"]["values"].get("v9") is None
    # Declared in the same call: accepted.
    view = (
        await app.playground.update_variables(
            "default", session["id"], {"v9": "ok"}, declarations=[{"name": "v9", "type": "string"}]
        )
    ).render()
    assert view["variables"]["values"]["v9"] == "ok"


@pytest.mark.parametrize("provider", ["opnai", "my-proxy", "OpenAI"])
async def test_an_unknown_provider_is_refused_where_it_is_written(app: App, provider: str) -> None:
    created = await app.traces.ingest("default", trace_payload())
    session = (await app.playground.open("default", created.id)).render()
    with pytest.raises(InvalidArgument) as err:
        (
            await app.playground.update_models("default", session["id"], [{"provider": provider, "name": "gpt-4o"}])
        ).render()
    assert err.value.details["field"] == "models[0].provider" and "agnt-local" in err.value.message
    with pytest.raises(InvalidArgument) as err:
        await app.prompts.upsert("default", "p", {**FIVE_BLOCKS, "model": {"provider": provider, "name": "x"}})
    assert err.value.details["field"] == "content.model.provider"
    assert ((await app.playground.get("default", session["id"])).render())["models"][0]["provider"] == "openai"

"""PromptService and the Python API answer typed results; their JSON is what clients always got."""

from __future__ import annotations

from typing import Any

import pytest

from agnt_traces.api import AgntTraces
from agnt_traces.app import App
from agnt_traces.services.prompt_results import (
    PromptDetail,
    PromptList,
    PromptVersions,
    PublishResult,
    RunPromptResult,
    UpsertResult,
)

pytestmark = pytest.mark.anyio

CONTENT: dict[str, Any] = {
    "blocks": [{"id": "intro", "role": "system", "content": "You help {{ company_name }}."}],
    "variables": [{"name": "company_name", "type": "string", "required": True}],
    "model": {"provider": "agnt-local", "name": "echo", "params": {}},
}
SUMMARY_KEYS = ["name", "description", "draftRevision", "draftEtag", "latestVersion", "labels", "model", "updatedAt"]


async def test_service_results_are_typed_and_render_the_same_json(app: App) -> None:
    p = app.prompts
    created = await p.upsert("default", "support", CONTENT, "for support")
    assert isinstance(created, UpsertResult) and created.draft_revision == 1 and created.latest_version is None
    assert list(created.render()) == [*SUMMARY_KEYS, "etag", "warnings"]

    published = await p.publish("default", "support", note="first")
    assert isinstance(published, PublishResult) and (published.version, published.label) == (1, "production")
    assert list(published.render()) == [*SUMMARY_KEYS, "label", "version", "etag"]  # no gate: no key

    got = await p.get("default", "support", label="production")
    assert isinstance(got, PromptDetail) and got.selected == "production" and got.version == 1
    assert got.content.blocks[0].content == CONTENT["blocks"][0]["content"]
    assert list(got.render()) == [*SUMMARY_KEYS, "selected", "version", "etag", "content", "versions", "history"]
    assert got.render()["versions"][0]["createdAt"].endswith("Z")
    assert got.render()["history"] == [
        {
            "label": "production",
            "version": 1,
            "previousVersion": None,
            "note": "first",
            "createdAt": got.history[0].created_at,
        }
    ]

    versions = await p.versions("default", "support")
    assert isinstance(versions, PromptVersions) and versions.labels == {"production": 1}
    assert versions.render()["versions"] == got.render()["versions"]

    listed = await p.list("default")
    assert isinstance(listed, PromptList) and [s.name for s in listed.prompts] == ["support"]

    ran = await p.run("default", "support", variables={"company_name": "Acme"})
    assert isinstance(ran, RunPromptResult) and ran.trace.prompt_version == 1 and ran.trace.replayable
    rendered = ran.render()
    assert rendered["trace"]["promptName"] == "support" and "replayIssues" not in rendered["trace"]
    assert rendered["trace"] == {**ran.trace.model_dump(mode="json", exclude={"replayable"}), "replayable": True}


async def test_results_still_read_like_the_dicts_they_were(app: App) -> None:
    created = await app.prompts.upsert("default", "support", CONTENT)
    assert created["draftRevision"] == 1 and created.get("latestVersion") is None
    assert "etag" in created and "gate" not in created
    assert {**created} == created.render()


async def test_python_api_returns_typed_objects(app: App) -> None:
    traces = AgntTraces(app, "default")
    created = await traces.upsert_prompt("support", CONTENT)
    assert isinstance(created, UpsertResult)
    published = await traces.publish_prompt("support")
    assert isinstance(published, PublishResult) and published.version == 1
    assert (await traces.get_prompt("support", label="production")).version == 1
    assert [s.name for s in (await traces.list_prompts()).prompts] == ["support"]
    result = await traces.run_prompt("support", variables={"company_name": "Acme"})
    assert result.output is not None and result.output.startswith("[agnt-local/echo]")
    assert result.trace["id"] == result.result.trace.id and result.trace["replayable"] is True
    assert result.render() == result.result.render()

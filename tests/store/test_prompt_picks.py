"""What a label, a version number or the draft selects of a prompt (``Store.pick_prompt``), on both stores:
the etag that running the prompt compiles, and for the draft the version it equals, if one was published."""

from __future__ import annotations

import pytest

from agnt_traces.app import App
from agnt_traces.errors import InvalidArgument, NotFound
from agnt_traces.models import MAX_INT

pytestmark = [pytest.mark.anyio, pytest.mark.both_stores]


def content(text: str) -> dict[str, object]:
    return {
        "blocks": [{"id": "intro", "role": "system", "content": text}],
        "model": {"provider": "agnt-local", "name": "echo"},
    }


async def test_a_label_a_version_and_the_draft_each_pick_their_content(app: App) -> None:
    p = app.prompts
    first = await p.upsert("default", "support", content("one"))
    await p.publish("default", "support")  # v1 = "one", production → 1
    second = await p.upsert("default", "support", content("two"))
    await p.publish("default", "support", label="staging")  # v2 = "two", staging → 2
    store = app.store

    by_label = await store.pick_prompt("default", "support", label="production", version=None)
    assert by_label is not None and (by_label.version, by_label.etag) == (1, first.etag)
    by_version = await store.pick_prompt("default", "support", label=None, version=2)
    assert by_version is not None and (by_version.version, by_version.etag) == (2, second.etag)
    draft = await store.pick_prompt("default", "support", label=None, version=None)
    assert draft is not None and (draft.version, draft.etag, draft.published_as) == (None, second.etag, 2)
    assert await store.pick_prompt("default", "support", label="draft", version=None) == draft

    third = await p.upsert("default", "support", content("three"))  # a draft nobody published
    draft = await store.pick_prompt("default", "support", label=None, version=None)
    assert draft is not None and (draft.etag, draft.published_as) == (third.etag, None)


async def test_nothing_is_picked_where_nothing_matches(app: App) -> None:
    await app.prompts.upsert("default", "support", content("one"))
    await app.prompts.publish("default", "support")
    store = app.store
    for tenant, name, label, version in [
        ("default", "missing", None, None),
        ("default", "support", "staging", None),  # no such label
        ("default", "support", None, 2),  # no such version
        ("default", "support", None, MAX_INT),
        ("default", "support", None, MAX_INT + 1),  # past any integer column: no error, nothing
        ("default", "support", None, 0),
        ("default", "support", None, -1),
        ("other", "support", "production", None),  # another tenant's prompt
        ("nobody", "support", None, None),  # a tenant with no data
    ]:
        assert await store.pick_prompt(tenant, name, label=label, version=version) is None, (tenant, label, version)


async def test_running_answers_what_it_answered_before_for_every_selection(app: App) -> None:
    """PromptService.pick: the same content, version and errors as resolve."""
    p = app.prompts
    await p.upsert("default", "support", content("one"))
    await p.publish("default", "support")
    await p.upsert("default", "support", content("two"))
    for kwargs in [{"label": "production"}, {"version": 1}, {"label": "draft"}, {}]:
        pick, picked_content = await p.pick("default", "support", **kwargs)  # type: ignore[arg-type]
        _, resolved, version, _ = await p.resolve("default", "support", **kwargs)  # type: ignore[arg-type]
        assert picked_content == resolved and pick.version == version and pick.etag == resolved.etag
    for kwargs, error, words in [
        ({"label": "staging"}, NotFound, "labels: production"),
        ({"version": 7}, NotFound, "versions: 1"),
        ({"version": 1, "label": "production"}, InvalidArgument, "not both"),
    ]:
        with pytest.raises(error, match=words):
            await p.pick("default", "support", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(NotFound, match="upsert_prompt creates one"):
        await p.pick("default", "nothing", label="production")
    with pytest.raises(InvalidArgument):
        await p.pick("default", "bad name!", label="production")

"""The store answers prompts as domain records (typed versions and label moves, times in ms), not API JSON."""

from __future__ import annotations

import pytest

from agnt_traces.app import App
from agnt_traces.ids import now_ms
from agnt_traces.models import PromptContent
from agnt_traces.prompt_records import LabelMove, PromptVersion

pytestmark = [pytest.mark.anyio, pytest.mark.both_stores]


def content(text: str) -> PromptContent:
    return PromptContent.model_validate({"blocks": [{"id": "a", "role": "system", "content": text}]})


async def test_versions_and_label_history_are_records(app: App) -> None:
    store = app.store
    before = now_ms()
    await store.save_draft("t", "p", content("one"))
    await store.publish("t", "p", "production", "first")
    await store.save_draft("t", "p", content("two"))
    await store.publish("t", "p", "production", "second")
    rec = await store.move_label("t", "p", "production", 1, "back")

    assert all(isinstance(v, PromptVersion) for v in rec.versions)
    assert [(v.version, v.note) for v in rec.versions] == [(1, "first"), (2, "second")]
    assert rec.versions[0].etag == content("one").etag
    assert all(isinstance(v.created_at, int) and v.created_at >= before for v in rec.versions)
    assert rec.latest_version == 2 and rec.find_version(2) == rec.versions[1] and rec.find_version(3) is None

    history = await store.label_history("t", "p")
    assert all(isinstance(m, LabelMove) for m in history)
    assert [(m.label, m.version, m.previous_version, m.note) for m in history] == [
        ("production", 1, None, "first"),
        ("production", 2, 1, "second"),
        ("production", 1, 2, "back"),
    ]
    assert all(isinstance(m.created_at, int) and m.created_at >= before for m in history)
    assert await store.label_history("other-tenant", "p") == []

"""Versions' contents are read from the store once per etag; what a caller gets is its own copy, per
tenant, equal to what the store holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from agnt_traces.app import open_app
from agnt_traces.config import Settings
from agnt_traces.models import PromptContent
from agnt_traces.services.contentcache import ContentCache

pytestmark = pytest.mark.anyio

CONTENT = {
    "blocks": [{"id": "s", "role": "system", "content": "You help {{ company }}."}],
    "variables": [{"name": "company", "default": "Acme"}],
    "model": {"provider": "agnt-local", "name": "echo"},
}


async def test_a_version_is_read_from_the_store_once_and_runs_stay_the_same(tmp_path: Path) -> None:
    async with open_app(Settings(db_path=str(tmp_path / "c.db"))) as app:
        reads: list[str] = []
        real = app.store.get_content

        async def counted(tenant: str, etag: str) -> Any:
            reads.append(tenant)
            return await real(tenant, etag)

        app.store.get_content = counted  # type: ignore[method-assign]
        with anyio.fail_after(60):
            for tenant in ("a", "b"):
                await app.prompts.upsert(tenant, "p", CONTENT)
                await app.prompts.publish(tenant, "p")
            outputs = []
            for _ in range(3):
                for tenant in ("a", "b"):
                    run = await app.prompts.run(tenant, "p", messages=[{"role": "user", "content": "hi"}])
                    outputs.append((tenant, run["trace"]["manifest"]["system"], run["trace"]["promptVersion"]))
            got = await app.prompts.get("a", "p", label="production")
    assert reads == ["a", "b"]  # once per tenant, not once per run
    assert outputs == [(t, "You help Acme.", 1) for _ in range(3) for t in ("a", "b")]
    assert got["content"] == PromptContent.model_validate(CONTENT).canonical()


def test_a_caller_changing_its_copy_changes_nothing_kept() -> None:
    cache = ContentCache()
    content = PromptContent.model_validate(CONTENT)
    cache.put("a", content.etag, content)
    first = cache.get("a", content.etag)
    assert first is not None and first == content and first is not content
    first.blocks[0].content = "changed"
    first.variables.clear()
    again = cache.get("a", content.etag)
    assert again == content and again.etag == content.etag
    assert cache.get("b", content.etag) is None  # another tenant reads its own store


def test_the_cache_is_bounded() -> None:
    cache = ContentCache(max_entries=2, max_entry_bytes=500)
    contents = [
        PromptContent.model_validate({**CONTENT, "blocks": [{"id": "s", "content": f"v{i}"}]}) for i in range(3)
    ]
    for c in contents:
        cache.put("a", c.etag, c)
    assert cache.get("a", contents[0].etag) is None
    assert cache.get("a", contents[2].etag) == contents[2]
    big = PromptContent.model_validate({**CONTENT, "blocks": [{"id": "s", "content": "x" * 600}]})
    cache.put("a", big.etag, big)
    assert cache.get("a", big.etag) is None

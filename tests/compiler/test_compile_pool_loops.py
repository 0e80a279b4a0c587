"""The compile pool on any event loop: under uvloop (libuv leaves a watched descriptor non-blocking), a
prompt whose request and result are larger than a socket buffer still goes through whole."""

from __future__ import annotations

import asyncio

import pytest

from agnt_traces.compile_pool import compile_prompt_async
from agnt_traces.models import PromptContent

uvloop = pytest.importorskip("uvloop")  # declared with the HTTP server; absent only off Linux/macOS

BIG_SYSTEM = "policy line that repeats. " * 20_000  # ~520 KB sent to the worker


def _content() -> PromptContent:
    return PromptContent.model_validate(
        {
            "blocks": [
                {"id": "system", "role": "system", "content": BIG_SYSTEM[:90_000]},
                {
                    "id": "table",
                    "role": "user",
                    "content": "{% for j in range(2) %}{% for i in range(7000) %}{{ i }}: row of the rendered table\n"
                    "{% endfor %}{% endfor %}",
                },
            ]
        }
    )


async def _twice() -> list[int]:
    sizes = []
    for _ in range(2):  # the second request reuses the worker whose descriptor the loop has watched
        result = await compile_prompt_async(_content(), {})
        sizes.append(sum(len(str(m["content"])) for m in result.messages))
    return sizes


def test_large_compiles_go_through_under_uvloop() -> None:
    sizes = uvloop.run(_twice())
    assert sizes[0] == sizes[1] > 440_000


def test_large_compiles_go_through_under_asyncio() -> None:
    sizes = asyncio.run(_twice())
    assert sizes[0] == sizes[1] > 440_000

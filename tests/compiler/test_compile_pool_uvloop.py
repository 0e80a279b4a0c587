"""The compile pool under uvloop (uvicorn's event loop whenever uvloop is installed): replies and
requests larger than a socket buffer cross the worker pipe whole."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from agnt_traces import compile_pool
from agnt_traces.compiler import compile_prompt
from agnt_traces.models import PromptContent

pytest.importorskip("uvloop")
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return "asyncio", {"use_uvloop": True}


async def test_a_large_reply_and_a_large_request_cross_the_pipe_whole() -> None:
    big_reply = PromptContent.model_validate(
        {
            "blocks": [
                {"id": "u", "content": "{% for i in range(3000) %}{{ i }}: {{ words|join(' ') }}\n{% endfor %}"}
            ],
            "variables": [{"name": "words", "type": "list", "default": ["a b c"] * 20}],
        }
    )
    big_request = PromptContent.model_validate(
        {"blocks": [{"id": f"b{i}", "content": f"{i} " + "x" * 90_000} for i in range(4)]}
    )
    with anyio.fail_after(120):
        for content in (big_reply, big_request, big_reply):
            compile_pool._RESULTS.clear()
            result = await compile_pool.compile_prompt_async(content, {})
            assert result == compile_prompt(content, {})

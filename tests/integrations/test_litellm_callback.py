"""The LiteLLM callback inside a small app: calls become traces; a dead store never hurts the app."""

from __future__ import annotations

import socket
import time

import anyio
import pytest

from agnt_traces.app import App, open_app
from agnt_traces.config import Settings
from agnt_traces.llm._runtime import aclose, load_litellm
from agnt_traces.services.queries import TraceQuery
from modelserver import ModelServer

pytestmark = pytest.mark.anyio


async def app_calls(litellm: object, server: ModelServer, n: int, **extra: object) -> list[object]:
    out = []
    for i in range(n):
        out.append(
            await litellm.acompletion(  # type: ignore[attr-defined]
                model="openai/gpt-4o-mini",
                api_base=server.openai_base,
                api_key="sk-app-secret-123",
                messages=[{"role": "system", "content": "Be short."}, {"role": "user", "content": f"question {i}"}],
                metadata={
                    "agnt_prompt_name": "support",
                    "agnt_prompt_version": 3,
                    "agnt_variables": {"tier": "premium"},
                    "tags": ["app"],
                },
                **extra,
            )
        )
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_calls_are_recorded_into_a_local_database(db_path: str, model_server: ModelServer) -> None:
    from agnt_traces.integrations.litellm import AgntTracesCallback

    litellm = load_litellm()
    cb = AgntTracesCallback(db=db_path, tenant="acme")
    litellm.callbacks = [cb]
    try:
        await app_calls(litellm, model_server, 3)
        model_server.script(["401"])
        with pytest.raises(Exception):  # noqa: B017 - the app sees its own error unchanged
            await app_calls(litellm, model_server, 1, num_retries=0, max_retries=0)
        assert await anyio.to_thread.run_sync(cb.wait_handled, 4, 10.0)
        assert cb.sent == 4
    finally:
        litellm.callbacks = []
        cb.close()
        await aclose()
    async with open_app(Settings(db_path=db_path)) as app:
        rows = (await app.traces.list("acme", TraceQuery(source="litellm"))).render()["traces"]
        assert len(rows) == 4
        ok = await app.traces.get("acme", rows[-1]["id"])
        assert ok.prompt_name == "support" and ok.prompt_version == 3 and ok.variables == {"tier": "premium"}
        assert ok.manifest.system == "Be short." and ok.messages == [{"role": "user", "content": "question 0"}]
        assert ok.output == "echo: question 0" and ok.tags == ["app"] and ok.input_tokens > 0
        failed = await app.traces.get("acme", rows[0]["id"])
        assert failed.status == "error" and failed.error is not None
        for r in rows:
            text = (await app.traces.get("acme", r["id"])).model_dump_json()
            assert "sk-app-secret-123" not in text


async def test_an_unreachable_team_server_never_blocks_or_breaks_the_app(model_server: ModelServer) -> None:
    from agnt_traces.integrations.litellm import AgntTracesCallback

    litellm = load_litellm()
    cb = AgntTracesCallback(
        url=f"http://127.0.0.1:{free_port()}",
        token="t",
        tenant="acme",
        max_attempts=2,
        backoff=0.01,
        timeout=0.5,
        max_queue=2,
    )
    litellm.callbacks = [cb]
    try:
        start = time.perf_counter()
        responses = await app_calls(litellm, model_server, 6)
        elapsed = time.perf_counter() - start
        assert all(r.choices[0].message.content.startswith("echo:") for r in responses)  # type: ignore[attr-defined]
        assert elapsed < 5
        assert await anyio.to_thread.run_sync(cb.wait_handled, 6, 15.0)
        assert cb.sent == 0 and cb.dropped == 6
    finally:
        litellm.callbacks = []
        cb.close()
        await aclose()


async def test_calls_reach_a_running_team_server_with_a_token(
    app: App, settings: Settings, model_server: ModelServer
) -> None:
    from agnt_traces.integrations.litellm import AgntTracesCallback
    from factories import add_token
    from live_http import live_server

    token, _ = await add_token(app, "acme")
    litellm = load_litellm()
    with live_server(settings) as server:
        cb = AgntTracesCallback(url=server.url, token=token, tenant="acme")
        litellm.callbacks = [cb]
        try:
            await app_calls(litellm, model_server, 3)
            assert await anyio.to_thread.run_sync(cb.wait_handled, 3, 15.0)
            assert (cb.sent, cb.dropped) == (3, 0)
        finally:
            litellm.callbacks = []
            cb.close()
            await aclose()
    rows = (await app.traces.list("acme", TraceQuery(source="litellm"))).render()["traces"]
    assert sorted(r["outputPreview"] for r in rows) == ["echo: question 0", "echo: question 1", "echo: question 2"]
    assert all(r["promptName"] == "support" and r["promptVersion"] == 3 for r in rows)

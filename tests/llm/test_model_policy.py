"""A tenant must never make the server send its model API keys where the tenant chooses.

The attack: a prompt (or a session's models, an ingested trace opened in a playground, a prompt file)
whose model params name an ``api_base`` / ``base_url`` of the tenant's, or headers, or odd params. The
server must refuse them where they are written, drop them where they are only read, send the operator's
keys only to the operator's endpoints (``AGNT_TRACES_MODEL_ENDPOINTS``), and never hand a provider's
response body back. ``evil`` below is a model server on loopback that is NOT an allowed endpoint: every
test ends by checking that it received nothing.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client

from agnt_traces.app import App, open_app
from agnt_traces.config import Settings
from agnt_traces.errors import InvalidArgument
from agnt_traces.llm import CallSettings, call_model
from agnt_traces.llm.policy import ALLOWED_PARAMS, Endpoint, ModelPolicy, parse_endpoint_url
from agnt_traces.models import ModelConfig
from agnt_traces.tokens import hash_token, new_token
from factories import trace_payload
from mcp_helpers import AGNT, call, call_error, server_params
from modelserver import ModelServer

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince211:litellm"),
]

TENANT = "default"
KEY = "sk-test-123-operator-openai-key"
MARKER = "MARKER-7f3a9c-provider-body"
BLOCKS = [{"id": "ask", "role": "user", "content": "hello there world"}]


@pytest.fixture(autouse=True)
def _no_provider_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AGNT_TRACES_MODEL_ENDPOINTS", "AGNT_TRACES_MODEL_HEADERS", "AGNT_TRACES_MAX_OUTPUT_CHARS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
async def _close_litellm_clients() -> AsyncIterator[None]:
    yield
    from agnt_traces.llm import aclose

    await aclose()


@pytest.fixture
def evil() -> Iterator[ModelServer]:
    """A loopback model server that is NOT one of the operator's endpoints: it must never be called."""
    server = ModelServer().start()
    try:
        yield server
        assert server.requests == [], f"the evil server was called: {[r.path for r in server.requests]}"
    finally:
        server.stop()


def content(base: str | None = None, provider: str = "openai", **params: Any) -> dict[str, Any]:
    if base is not None:
        params["api_base"] = base
    return {"blocks": BLOCKS, "model": {"provider": provider, "name": "gpt-4o-mini", "params": params}}


def evil_urls(evil: ModelServer, good: ModelServer) -> list[str]:
    """Ways to name the evil server, or to sneak past the allowed one."""
    g, e = good.port, evil.port
    return [
        evil.openai_base,
        evil.anthropic_base,
        f"http://localhost:{e}/v1",
        f"http://127.0.0.1:{g}@127.0.0.1:{e}/v1",  # userinfo: host is the evil one
        f"http://user:pw@127.0.0.1:{g}/v1",
        f"http://127.0.0.1:{e}\\@127.0.0.1:{g}/v1",  # backslash
        f"http://127.0.0.1:{e}%2F@127.0.0.1:{g}/v1",
        f"http://127.0.0.1:{g}/v1/%2e%2e/x",
        f"http://127.0.0.1:{g}/v1/../../x",
        f"http://127.0.0.1:{g}//127.0.0.1:{e}/v1",
        f"http://127.0.0.1:{g}/v1?x=@127.0.0.1:{e}",
        f"http://127.0.0.1:{g}/v1#@127.0.0.1:{e}",
        f"ftp://127.0.0.1:{g}/v1",
        f"127.0.0.1:{e}/v1",
        f" http://127.0.0.1:{e}/v1",
        f"http://127.0.0.1:{e}/v1\n",
        f"http://[::ffff:127.0.0.1]:{e}/v1",
    ]


# ---------------------------------------------------------------------------------------------------
# The policy itself, with an explicit list


async def test_endpoint_matching_is_by_origin_and_path_boundary() -> None:
    policy = ModelPolicy.build(["http://127.0.0.1:8000/v1", "https://API.example.com", "http://[::1]:9000/"])

    def allowed(url: str) -> bool:
        parsed = parse_endpoint_url(url)
        return parsed is not None and policy.endpoint_for(parsed) is not None

    for url in [
        "http://127.0.0.1:8000/v1",
        "http://127.0.0.1:8000/v1/",
        "http://127.0.0.1:8000/v1/x",
        "HTTP://127.0.0.1:8000/v1",
        "https://api.example.com",
        "https://api.example.com:443/any/path",
        "https://Api.Example.COM/v1",
        "http://[::1]:9000/v1",
        "http://[0:0:0:0:0:0:0:1]:9000",
    ]:
        assert allowed(url), url
    for url in [
        "http://127.0.0.1:8000/v10",
        "http://127.0.0.1:8000",
        "http://127.0.0.1:8000/",
        "http://127.0.0.1:8001/v1",
        "https://127.0.0.1:8000/v1",
        "http://127.0.0.1/v1",
        "http://localhost:8000/v1",
        "http://a@127.0.0.1:8000/v1",
        "http://127.0.0.1:8000@evil.example/v1",
        "http://127.0.0.1:8000\\@evil/v1",
        "http://127.0.0.1:8000/v1/%2e%2e/admin",
        "http://127.0.0.1:8000/v1/../admin",
        "http://127.0.0.1:8000/v1/./x",
        "http://127.0.0.1:8000/v1//x",
        "http://127.0.0.1:8000/v1?q=1",
        "http://api.example.com",
        "https://api.example.com.evil.example",
        "https://api.example.com:8443",
        "http://[::1]:9001",
        "http://127.0.0.1:0/v1",
        "http://127.0.0.1:99999/v1",
        "",
        None,
        42,
    ]:
        assert not allowed(url), url  # type: ignore[arg-type]
    assert not ModelPolicy().endpoints, "no endpoint unless the operator lists one"


async def test_endpoint_entries_are_checked_and_name_their_key() -> None:
    entry = Endpoint.parse(" https://llm.internal:8443/v1=INTERNAL_LLM_KEY ")
    assert (entry.key_env, entry.url.text()) == ("INTERNAL_LLM_KEY", "https://llm.internal:8443/v1")
    for bad in ["http://a@b/v1", "not a url", "http://x/v1=", "http://x/v1=1BAD", "http://x/%41"]:
        with pytest.raises(InvalidArgument) as err:
            ModelPolicy.build([bad])
        assert "AGNT_TRACES_MODEL_ENDPOINTS" in err.value.message
    with pytest.raises(InvalidArgument, match="AGNT_TRACES_MODEL_HEADERS"):
        ModelPolicy.build([], ["X-Ok", "Bad Header"])


async def test_settings_read_the_policy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGNT_TRACES_MODEL_ENDPOINTS", "http://127.0.0.1:11434, https://x.example/v1=X_KEY")
    monkeypatch.setenv("AGNT_TRACES_MODEL_HEADERS", "X-Request-Tag")
    monkeypatch.setenv("AGNT_TRACES_MODEL_TIMEOUT", "12")
    monkeypatch.setenv("AGNT_TRACES_MAX_OUTPUT_CHARS", "5000")
    policy = Settings.from_env(db=":memory:").policy()
    assert [e.describe() for e in policy.endpoints] == ["http://127.0.0.1:11434", "https://x.example:443/v1=X_KEY"]
    assert policy.allowed_headers == {"x-request-tag"}
    assert (policy.max_timeout, policy.max_output_chars) == (12.0, 5000)
    monkeypatch.setenv("AGNT_TRACES_MODEL_ENDPOINTS", "http://u@127.0.0.1:1")
    with pytest.raises(InvalidArgument, match="AGNT_TRACES_MODEL_ENDPOINTS"):
        Settings.from_env(db=":memory:")


async def test_params_are_an_allowlist_with_checked_values() -> None:
    policy = ModelPolicy.build(["http://127.0.0.1:8000/v1"], ["x-tag"], max_timeout=30)
    policy.check_params(
        {
            "temperature": 0.2,
            "max_tokens": 100,
            "stop": ["\n\n", "END"],
            "seed": 7,
            "response_format": {"type": "json_object"},
            "timeout": 30,
            "api_base": "http://127.0.0.1:8000/v1",
            "extra_headers": {"X-Tag": "a"},
            "prompt_cache_key": "support-v1",
        }
    )
    for params, names in [
        ({"passwd": "hunter2"}, ["passwd"]),
        ({"api_key": "sk-x", "organization": "o", "temperature": 0.1}, ["api_key", "organization"]),
        ({"mock_response": "x", "custom_llm_provider": "openai", "num_retries": 9}, None),
        ({"api_version": "1", "aws_region_name": "x", "n": 5, "stream": True}, None),
        ({"stop": ["a", "b", "c", "d", "e"]}, ["stop"]),
        ({"stop": "x" * 65}, ["stop"]),
        ({"max_tokens": 0}, ["max_tokens"]),
        ({"max_tokens": 10**9}, ["max_tokens"]),
        ({"max_tokens": True}, ["max_tokens"]),
        ({"temperature": "hot"}, ["temperature"]),
        ({"timeout": 31}, ["timeout"]),
        ({"timeout": float("inf")}, ["timeout"]),
        ({"extra_headers": {"Authorization": "Bearer x"}}, ["extra_headers"]),
        ({"headers": {"X-Tag": "a\r\nHost: evil"}}, ["headers"]),
        ({"base_url": "http://127.0.0.1:8001/v1"}, ["base_url"]),
        ({"api_base": "http://127.0.0.1:8000/v1", "base_url": "http://127.0.0.1:8000/v1/other"}, ["base_url"]),
    ]:
        with pytest.raises(InvalidArgument) as err:
            policy.check_params(params)
        expected = names if names is not None else sorted(params)
        assert err.value.details["names"] == sorted(expected), params
        assert err.value.code == "invalid_argument"
        for name in expected:
            assert repr(name) in err.value.message
    with pytest.raises(InvalidArgument) as err:
        policy.check_params({"frobnicate": 1})
    assert "Allowed params: " in err.value.message and err.value.details["allowed"] == list(ALLOWED_PARAMS)
    assert "temperature" in err.value.message and "n" not in ALLOWED_PARAMS


async def test_call_time_filter_drops_clamps_and_aliases() -> None:
    policy = ModelPolicy.build(["http://127.0.0.1:8000/v1"], max_timeout=5)
    out = policy.filter_params(
        {"base_url": "http://127.0.0.1:8000/v1", "timeout": 600, "passwd": "x", "extra_headers": {"A": "b"}}
    )
    assert out.params == {"api_base": "http://127.0.0.1:8000/v1", "timeout": 5}
    assert sorted(out.dropped) == ["extra_headers", "passwd"] and out.clamped == {"timeout": 600}
    assert out.endpoint is not None and out.endpoint.loopback


# ---------------------------------------------------------------------------------------------------
# In process: write-time refusals, read-time drops, keys, headers, timeout, output, missing keys


async def test_upsert_and_update_models_refuse_an_endpoint_not_listed(
    app: App, model_server: ModelServer, evil: ModelServer
) -> None:
    for url in evil_urls(evil, model_server):
        for key in ("api_base", "base_url"):
            with pytest.raises(InvalidArgument) as err:
                await app.prompts.upsert(TENANT, "p", content(None, **{key: url}))
            assert key in err.value.details["names"], url
    assert await app.store.get_prompt(TENANT, "p") is None
    await app.prompts.upsert(TENANT, "p", content(model_server.openai_base))  # the listed one is fine
    trace = await app.traces.ingest(TENANT, trace_payload(promptName=None, promptVersion=None))
    session = (await app.playground.open(TENANT, trace.id)).render()
    for url in evil_urls(evil, model_server)[:4]:
        with pytest.raises(InvalidArgument) as err:
            (
                await app.playground.update_models(
                    TENANT, session["id"], [{"provider": "openai", "name": "m", "params": {"api_base": url}}]
                )
            ).render()
        assert err.value.details["field"] == "models[0].params"


async def test_a_trace_naming_an_evil_endpoint_opens_without_it_and_runs_nowhere_near_it(
    app: App, evil: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)  # the key the attacker wants
    model = {
        "provider": "openai",
        "name": "gpt-4o-mini",
        "params": {
            "api_base": evil.openai_base,
            "base_url": evil.openai_base,
            "extra_headers": {"X-Exfil": "1"},
            "temperature": 0.3,
        },
    }
    payload = trace_payload(
        promptName=None,
        promptVersion=None,
        manifest={"system": "s", "tools": [], "model": model, "etag": None},
        model={"provider": "openai", "name": "gpt-4o-mini"},
    )
    ingested = await app.traces.ingest(TENANT, payload)
    session = (await app.playground.open(TENANT, ingested.id)).render()
    assert session["models"] == [{"provider": "openai", "name": "gpt-4o-mini", "params": {"temperature": 0.3}}]
    assert session["notes"] and "'api_base'" in session["notes"][0] and "'extra_headers'" in session["notes"][0]
    compiled = (await app.playground.compile(TENANT, session["id"])).render()
    assert compiled["notes"] == session["notes"]
    # The run goes to the provider's default endpoint, which is not reachable here (and refused by the
    # network guard): with the key unset it fails at once; the point is that evil sees nothing.
    monkeypatch.delenv("OPENAI_API_KEY")
    with anyio.fail_after(20):
        result = (await app.playground.run(TENANT, session["id"])).render()
    [run] = result["runs"]
    assert run["status"] == "error"
    stored = await app.traces.get(TENANT, run["traceId"])
    assert "api_base" not in stored.manifest.model["params"]
    assert "OPENAI_API_KEY" in (stored.error.message if stored.error else "")


async def test_a_listed_endpoint_gets_its_own_key_and_no_other(
    db_path: str, model_server: ModelServer, evil: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = ModelServer().start()
    try:
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("OTHER_LLM_KEY", "sk-other-endpoint-456789")
        policy = ModelPolicy.build([model_server.base_url, f"{other.openai_base}=OTHER_LLM_KEY"])
        async with open_app(Settings(db_path=db_path, model_timeout=5, model_policy=policy)) as app:
            await app.prompts.upsert(TENANT, "main", content(model_server.openai_base))
            await app.prompts.upsert(TENANT, "other", content(other.openai_base))
            with anyio.fail_after(30):
                a = await app.prompts.run(TENANT, "main", label="draft")
                b = await app.prompts.run(TENANT, "other", label="draft")
            assert a["trace"]["output"] == b["trace"]["output"] == "echo: hello there world"
            assert [r.api_key for r in model_server.requests] == [KEY]
            assert [r.api_key for r in other.requests] == ["sk-other-endpoint-456789"]  # never OPENAI_API_KEY
            monkeypatch.delenv("OTHER_LLM_KEY")
            with anyio.fail_after(10), pytest.raises(Exception) as err:
                await app.prompts.run(TENANT, "other", label="draft")
            assert "OTHER_LLM_KEY" in str(err.value) and len(other.requests) == 1
    finally:
        other.stop()


async def test_headers_only_by_the_operators_names(db_path: str, model_server: ModelServer, evil: ModelServer) -> None:
    async with open_app(Settings(db_path=db_path)) as app:
        for name in ("Authorization", "X-Api-Key", "Host", "X-Anything"):
            for key in ("extra_headers", "headers"):
                with pytest.raises(InvalidArgument, match="may not set header"):
                    await app.prompts.upsert(TENANT, "h", content(model_server.openai_base, **{key: {name: "v"}}))
    policy = ModelPolicy.build([model_server.base_url], ["X-Request-Tag"])
    async with open_app(Settings(db_path=db_path, model_timeout=5, model_policy=policy)) as app:
        with pytest.raises(InvalidArgument):
            await app.prompts.upsert(TENANT, "h", content(model_server.openai_base, extra_headers={"Host": "x"}))
        await app.prompts.upsert(TENANT, "h", content(model_server.openai_base, extra_headers={"x-request-tag": "t1"}))
        with anyio.fail_after(30):
            await app.prompts.run(TENANT, "h", label="draft")
    [req] = model_server.requests
    assert req.headers.get("x-request-tag") == "t1"


async def test_timeout_is_refused_above_the_limit_and_clamped_at_call_time(
    db_path: str, model_server: ModelServer
) -> None:
    async with open_app(Settings(db_path=db_path, model_timeout=0.5)) as app:
        with pytest.raises(InvalidArgument, match=r"at most 0\.5"):
            await app.prompts.upsert(TENANT, "t", content(model_server.openai_base, timeout=600))
    model_server.script(["hang"])
    model = ModelConfig(
        provider="openai", name="gpt-4o-mini", params={"api_base": model_server.openai_base, "timeout": 600}
    )
    started = time.monotonic()
    with anyio.fail_after(10):
        r = await call_model(
            model, "", [{"role": "user", "content": "hi"}], None, CallSettings(timeout=0.5, max_attempts=1)
        )
    assert time.monotonic() - started < 5
    assert r.error is not None and r.error["type"] == "Timeout" and "0.5 s" in r.error["message"]
    assert r.metadata["clampedParams"] == ["timeout"]


@pytest.mark.parametrize("stream", [False, True])
async def test_output_beyond_the_limit_is_cut_and_marked(db_path: str, model_server: ModelServer, stream: bool) -> None:
    policy = ModelPolicy.build([model_server.base_url], max_output_chars=12)
    words = " ".join(f"word{i}" for i in range(400))
    async with open_app(Settings(db_path=db_path, model_timeout=5, model_policy=policy)) as app:
        blocks = [{"id": "ask", "role": "user", "content": words}]
        await app.prompts.upsert(TENANT, "long", {**content(model_server.openai_base), "blocks": blocks})
        with anyio.fail_after(30):
            if stream:
                r = await call_model(
                    ModelConfig(provider="openai", name="m", params={"api_base": model_server.openai_base}),
                    "",
                    [{"role": "user", "content": words}],
                    None,
                    CallSettings(timeout=5, stream=True, policy=policy),
                )
                assert r.output == "echo: word0 "[:12] and r.metadata["outputTruncated"] is True
                return
            out = await app.prompts.run(TENANT, "long", label="draft")
        trace = out["trace"]
        assert trace["output"] == ("echo: " + words)[:12]
        assert trace["metadata"]["outputTruncated"] is True
        assert trace["model"]["metadata"]["outputTruncated"] is True
        assert trace["model"]["metadata"]["outputChars"] == len("echo: " + words)


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
async def test_a_missing_key_fails_at_once_naming_it(app: App, provider: str) -> None:
    await app.prompts.upsert(TENANT, "k", content(None, provider=provider))
    started = time.monotonic()
    with anyio.fail_after(10), pytest.raises(Exception) as err:
        await app.prompts.run(TENANT, "k", label="draft")
    assert time.monotonic() - started < 2, "a missing key must not be retried or waited on"
    data = err.value.to_dict()["error"]  # type: ignore[attr-defined]
    assert data["code"] == "model_error"
    expected = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY", "gemini": "GEMINI_API_KEY"}[provider]
    assert expected in data["message"] and "agnt-local/echo" in data["message"]
    trace = await app.traces.get(TENANT, data["details"]["traceId"])
    text = trace.model_dump_json()
    assert trace.model.metadata["attempts"] == 0
    for bad in ("Traceback", ".py", "litellm.", "site-packages"):
        assert bad not in text and bad not in data["message"], bad


async def test_provider_error_bodies_never_come_back(
    app: App, model_server: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    model_server.error_message = f"{MARKER} key={KEY} at /srv/app/secret.py line 3"
    for status in ("400", "401", "403", "404", "422", "429", "500"):
        model_server.script([status, status, status])
        await app.prompts.upsert(TENANT, "e", content(model_server.openai_base))
        with anyio.fail_after(60), pytest.raises(Exception) as err:
            await app.prompts.run(TENANT, "e", label="draft")
        text = json.dumps(err.value.to_dict())  # type: ignore[attr-defined]
        trace = await app.traces.get(TENANT, err.value.details["traceId"])  # type: ignore[attr-defined]
        for where in (text, trace.model_dump_json()):
            assert MARKER not in where and KEY not in where and "secret.py" not in where, (status, where)
        model_server.reset()
        model_server.error_message = f"{MARKER} key={KEY} at /srv/app/secret.py line 3"


# ---------------------------------------------------------------------------------------------------
# prompts import, MCP over stdio, REST over a real `serve --http`


async def test_prompts_import_refuses_an_evil_endpoint_and_stores_nothing(tmp_path: Path, evil: ModelServer) -> None:
    folder = tmp_path / "prompts"
    folder.mkdir()
    (folder / "good.yaml").write_text("name: good\nblocks: []\n")
    (folder / "bad.yaml").write_text(
        "name: bad\nblocks: []\nmodel:\n  provider: openai\n  name: gpt-4o-mini\n"
        f"  params:\n    api_base: {evil.openai_base}\n"
    )
    db = str(tmp_path / "t.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGNT_TRACES_")}
    with anyio.fail_after(120):
        proc = await anyio.run_process([AGNT, "prompts", "import", str(folder), "--db", db], env=env, check=False)
        stderr = proc.stderr.decode()
        assert proc.returncode == 2, proc.stdout.decode() + stderr
        assert "'api_base'" in stderr and "bad" in stderr
        listed = await anyio.run_process([AGNT, "prompts", "list", "--db", db], env=env, check=False)
    assert "good" not in listed.stdout.decode()


async def test_mcp_over_stdio_refuses_and_never_calls_the_evil_endpoint(
    db_path: str, model_server: ModelServer, evil: ModelServer
) -> None:
    with anyio.fail_after(90):
        async with Client(server_params(db_path), mode="legacy") as c:
            err = await call_error(c, "upsert_prompt", name="p", content=content(evil.openai_base))
            assert err["code"] == "invalid_argument" and "api_base" in err["details"]["names"]
            err = await call_error(c, "upsert_prompt", name="p", content=content(None, passwd="hunter2"))
            assert err["code"] == "invalid_argument" and err["details"]["names"] == ["passwd"]
            model = {"provider": "openai", "name": "m", "params": {"api_base": evil.openai_base}}
            payload = trace_payload(promptName=None, promptVersion=None)
            payload["manifest"]["model"] = model
            ingested = await call(c, "ingest_trace", trace=payload)
            session = await call(c, "open_playground", trace_id=ingested["id"])
            assert session["models"][0]["params"] == {} and session["notes"]
            err = await call_error(c, "update_models", session_id=session["id"], models=[model])
            assert err["code"] == "invalid_argument"
            good = {"provider": "openai", "name": "m", "params": {"api_base": model_server.openai_base}}
            await call(c, "update_models", session_id=session["id"], models=[good])
            ran = await call(c, "run_session", session_id=session["id"])
            assert ran["runs"][0]["status"] == "success", ran
            # A provider error whose body carries a marker: not in the tool results, nor in the trace.
            model_server.error_message = f"{MARKER} body"
            model_server.script(["400", "401"])
            ran = await call(c, "run_session", session_id=session["id"], fresh=True)  # not the cached answer
            assert ran["runs"][0]["status"] == "error" and MARKER not in json.dumps(ran), ran
            await call(c, "upsert_prompt", name="p", content=content(model_server.openai_base))
            err = await call_error(c, "run_prompt", name="p", label="draft")
            assert err["code"] == "model_error" and MARKER not in json.dumps(err), err
            for trace_id in (ran["runs"][0]["traceId"], err["details"]["traceId"]):
                trace = await call(c, "get_trace", trace_id=trace_id)
                assert trace["status"] == "error" and MARKER not in json.dumps(trace), trace
    assert len(model_server.requests) == 3


@pytest.fixture
def served(tmp_path: Path, model_server: ModelServer) -> Iterator[tuple[str, Path, str]]:
    """``agnt-traces serve --http`` (a real process) at DEBUG with a provider key set; (url, stderr, db)."""
    db = str(tmp_path / "served.db")
    log = tmp_path / "stderr.log"
    env = {**os.environ, "AGNT_TRACES_LOG_LEVEL": "DEBUG", "OPENAI_API_KEY": KEY}
    cmd = [sys.executable, "-m", "agnt_traces", "serve", "--http", "--port", "0", "--db", db]
    with log.open("w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
    try:
        deadline = time.monotonic() + 30
        while not (match := re.search(r"serving on (http://127\.0\.0\.1:\d+)", log.read_text())):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield match.group(1), log, db
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


async def test_rest_over_a_real_server(
    served: tuple[str, Path, str], model_server: ModelServer, evil: ModelServer
) -> None:
    url, log, db = served
    token = new_token()
    async with open_app(Settings(db_path=db)) as admin:
        await admin.store.create_token("acme", "test", hash_token(token))
    headers = {"Authorization": f"Bearer {token}"}
    model_server.error_message = f"{MARKER} echo key={KEY}"
    with anyio.fail_after(120):
        async with httpx2.AsyncClient(base_url=url + "/api/v1/tenants/acme", headers=headers, timeout=60) as c:
            for bad in evil_urls(evil, model_server)[:6]:
                r = await c.put("/prompts/p", json={"content": content(bad)})
                assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_argument", r.text
            r = await c.put("/prompts/p", json={"content": content(None, extra_headers={"Authorization": "x"})})
            assert r.status_code == 400, r.text
            # An ingested trace naming the evil endpoint, opened and run: evil still sees nothing.
            payload = trace_payload(promptName=None, promptVersion=None)
            # (the offline model: with the api_base left out, a run must not go to a real provider from here)
            evil_model = {"provider": "agnt-local", "name": "echo", "params": {"api_base": evil.openai_base}}
            payload["manifest"]["model"] = evil_model
            payload["model"] = {"provider": "agnt-local", "name": "echo"}
            trace_id = (await c.post("/traces", json=payload)).json()["id"]
            session = (await c.post(f"/traces/{trace_id}/playground/sessions")).json()
            assert session["models"][0]["params"] == {} and session["notes"], session
            r = await c.patch(
                f"/playground/sessions/{session['id']}/models",
                json={"models": [{"provider": "openai", "name": "m", "params": {"api_base": evil.openai_base}}]},
            )
            assert r.status_code == 400, r.text
            r = await c.post(f"/playground/sessions/{session['id']}/run")
            assert r.status_code == 200 and r.json()["runs"][0]["status"] == "success", r.text
            # The provider answers errors whose body carries a marker and the key: neither comes back.
            r = await c.put("/prompts/p", json={"content": content(model_server.openai_base)})
            assert r.status_code == 200, r.text
            for status in ("400", "401", "500"):
                model_server.script([status] * 3)
                r = await c.post("/prompts/p/run", json={"label": "draft"})
                assert r.status_code == 502, r.text
                assert MARKER not in r.text and KEY not in r.text
                trace = await c.get(f"/traces/{r.json()['error']['details']['traceId']}")
                assert MARKER not in trace.text and KEY not in trace.text
                model_server.reset()
                model_server.error_message = f"{MARKER} echo key={KEY}"
    await anyio.sleep(0.2)
    text = log.read_text()
    assert "DEBUG" in text
    for bad in (MARKER, KEY, "Traceback"):
        assert bad not in text, bad


# ---------------------------------------------------------------------------------------------------
# The LiteLLM callback: the same one message format


async def test_callback_errors_have_the_servers_format(db_path: str, model_server: ModelServer) -> None:
    from agnt_traces.integrations.litellm import trace_from_logging
    from agnt_traces.llm import load_litellm

    litellm = load_litellm()
    model_server.error_message = f"{MARKER} body"
    for status, expected in [("400", "openai rejected the request (400)"), ("401", "authentication failed for openai")]:
        model_server.script([status])
        with anyio.fail_after(30), pytest.raises(Exception) as err:
            await litellm.acompletion(
                model="openai/gpt-4o-mini",
                api_base=model_server.openai_base,
                api_key="sk-app-key-000000000",
                messages=[{"role": "user", "content": "hi"}],
                num_retries=0,
                max_retries=0,
            )
        assert "litellm." in str(err.value)  # what LiteLLM itself says
        kwargs = {"exception": err.value, "custom_llm_provider": "openai", "model": "gpt-4o-mini", "messages": []}
        trace = trace_from_logging(kwargs, None, failed=True)
        message = trace["error"]["message"]
        assert message.startswith(expected), message
        for bad in ("litellm.", "Exception -", MARKER, "sk-app-key"):
            assert bad not in message, message

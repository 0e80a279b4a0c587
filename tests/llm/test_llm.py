"""agnt_traces.llm through the REAL LiteLLM path (no mocks, no mock_response) against tests/modelserver.py.

Token counts are words (see modelserver): system "You are terse." (3) + user "hello there world" (3)
= 6 input tokens; the answer "echo: hello there world" = 4 output tokens.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from agnt_traces import llm
from agnt_traces.llm import CallResult, CallSettings, call_model, estimate_cost, estimate_tokens, scrub
from agnt_traces.models import ModelConfig
from modelserver import ModelServer, allow_endpoint, expected_usage
from netguard import expect_blocked, no_network  # noqa: F401

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.usefixtures("no_network"),
    # LiteLLM 1.110.2 reads `model_fields` on pydantic instances while streaming OpenAI chunks
    # (litellm_core_utils/model_response_utils.py), on every call: a DeprecationWarning we cannot fix.
    pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince211:litellm"),
]

ROOT = Path(__file__).resolve().parents[2]
SYSTEM = "You are terse."
MESSAGES = [{"role": "user", "content": "hello there world"}]
FAST = dict(timeout=5.0, backoff_base=0.001, backoff_cap=0.01)
SECRET = "sk-test-SECRET-abcdefghijklmnop1234"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _no_provider_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
async def _close_litellm_clients() -> AsyncIterator[None]:
    yield
    await llm.aclose()  # LiteLLM caches HTTP clients per event loop; each test has its own loop


@pytest.fixture
def server(model_server: ModelServer) -> Iterator[ModelServer]:
    yield model_server


def openai(server: ModelServer, name: str = "gpt-4o-mini", **params: Any) -> ModelConfig:
    return ModelConfig(provider="openai", name=name, params={"api_base": server.openai_base, **params})


def anthropic(server: ModelServer, name: str = "claude-sonnet-4-5", **params: Any) -> ModelConfig:
    return ModelConfig(provider="anthropic", name=name, params={"api_base": server.anthropic_base, **params})


def local(**params: Any) -> ModelConfig:
    return ModelConfig(provider="agnt-local", name="echo", params=params)


def map_price(model: str, input_tokens: int, output_tokens: int) -> float:
    """The price straight from LiteLLM's bundled map, computed here by hand."""
    entry = llm.load_litellm().model_cost[model]
    return input_tokens * entry["input_cost_per_token"] + output_tokens * entry["output_cost_per_token"]


async def call(model: ModelConfig, messages: list[dict[str, Any]] | None = None, **kw: Any) -> CallResult:
    tools = kw.pop("tools", None)
    system = kw.pop("system", SYSTEM)
    settings = CallSettings(**{**FAST, **kw})
    with anyio.fail_after(30):
        return await call_model(model, system, messages if messages is not None else MESSAGES, tools, settings)


def no_secret_anywhere(result: CallResult, secret: str) -> None:
    assert secret not in repr(result)
    assert secret not in json.dumps(result.metadata, default=str)


# ---------------------------------------------------------------------------------------------------
# Import cost and process hygiene


async def test_importing_the_package_does_not_import_litellm() -> None:
    code = "import agnt_traces.llm, sys; assert 'litellm' not in sys.modules, 'litellm imported eagerly'"
    with anyio.fail_after(60):
        proc = await anyio.run_process([sys.executable, "-c", code], cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr.decode()


async def test_calls_never_write_to_stdout_and_stay_offline() -> None:
    """stdout is the MCP stdio transport: not one byte from LiteLLM, even on errors with DEBUG logging."""
    script = textwrap.dedent(
        """
        import asyncio, logging, os, sys
        sys.path.insert(0, "tests")
        import netguard
        netguard.install()
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
        from agnt_traces.llm import CallSettings, call_model, estimate_tokens
        from agnt_traces.models import ModelConfig

        async def main():
            s = CallSettings(timeout=2, max_attempts=2, backoff_base=0.001)
            msgs = [{"role": "user", "content": "hi"}]
            ok = await call_model(ModelConfig(provider="agnt-local", name="echo"), "sys", msgs, settings=s)
            assert ok.status == "success", ok
            st = await call_model(ModelConfig(provider="agnt-local", name="echo"), "sys", msgs,
                                  settings=CallSettings(stream=True))
            assert st.status == "success", st
            bad = await call_model(ModelConfig(provider="openai", name="gpt-4o-mini",
                                               params={"api_base": "http://127.0.0.1:9/v1"}), "", msgs, settings=s)
            assert bad.status == "error", bad
            unknown = await call_model(ModelConfig(provider="nosuch", name="x"), "", msgs, settings=s)
            assert unknown.status == "error", unknown
            estimate_tokens(ModelConfig(provider="anthropic", name="claude-sonnet-4-5"), "sys", msgs)
            assert os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
            assert not netguard.violations, netguard.violations

        asyncio.run(main())
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("LITELLM_LOCAL_MODEL_COST_MAP", "LITELLM_LOG")}
    with anyio.fail_after(120):
        proc = await anyio.run_process([sys.executable, "-c", script], cwd=ROOT, env=env, check=False)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    assert proc.stdout == b""


# ---------------------------------------------------------------------------------------------------
# OpenAI and Anthropic wire formats, plain and streamed: exact tokens and cost


async def test_openai_call_exact_tokens_and_cost(server: ModelServer) -> None:
    r = await call(openai(server, temperature=0))
    assert r.status == "success", r.error
    assert r.output == "echo: hello there world"
    assert (r.input_tokens, r.output_tokens, r.total_tokens) == (6, 4, 10)
    assert r.cost == pytest.approx(map_price("gpt-4o-mini", 6, 4), rel=1e-9)
    assert r.cost == pytest.approx(3.3e-06)
    assert r.cost_known is True
    assert (r.provider, r.model, r.error, r.tool_calls) == ("openai", "gpt-4o-mini", None, [])
    assert r.metadata["attempts"] == 1 and r.metadata["retries"] == 0
    assert r.metadata["finishReason"] == "stop"
    assert r.metadata["responseId"] == "chatcmpl-mock-1"
    assert 0 < r.duration < 5
    [req] = server.requests
    assert req.path == "/v1/chat/completions"
    assert req.body["model"] == "gpt-4o-mini"
    assert req.body["messages"] == [{"role": "system", "content": SYSTEM}, *MESSAGES]
    assert req.body["temperature"] == 0
    assert "stream" not in req.body or req.body["stream"] is False
    assert req.api_key == llm.LOCAL_API_KEY  # loopback api_base and no OPENAI_API_KEY: placeholder
    assert expected_usage(req.body) == (6, 4)


async def test_anthropic_call_exact_tokens_and_cost(server: ModelServer) -> None:
    r = await call(anthropic(server, max_tokens=100))
    assert r.status == "success", r.error
    assert r.output == "echo: hello there world"
    assert (r.input_tokens, r.output_tokens, r.total_tokens) == (6, 4, 10)
    assert r.cost == pytest.approx(map_price("claude-sonnet-4-5", 6, 4), rel=1e-9)
    assert r.cost == pytest.approx(7.8e-05)
    assert r.metadata["finishReason"] == "stop"
    [req] = server.requests
    assert req.path == "/v1/messages"
    assert req.headers["x-api-key"] == llm.LOCAL_API_KEY
    assert req.body["max_tokens"] == 100
    system = req.body["system"]
    assert (system if isinstance(system, str) else system[0]["text"]) == SYSTEM
    assert [m["role"] for m in req.body["messages"]] == ["user"]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_streaming_gives_the_same_result_with_true_usage(server: ModelServer, provider: str) -> None:
    model = openai(server) if provider == "openai" else anthropic(server)
    plain = await call(model)
    streamed = await call(model, stream=True)
    assert streamed.status == "success", streamed.error
    assert streamed.output == plain.output == "echo: hello there world"
    # provider-reported usage, not tiktoken guesses (Anthropic's message_start output_tokens=1 not added)
    assert (streamed.input_tokens, streamed.output_tokens, streamed.total_tokens) == (6, 4, 10)
    assert streamed.cost == pytest.approx(plain.cost)
    assert streamed.metadata["stream"] is True
    assert 0 <= streamed.metadata["timeToFirstToken"] <= streamed.duration
    body = server.requests[-1].body
    assert body["stream"] is True
    if provider == "openai":
        assert body["stream_options"] == {"include_usage": True}


async def test_a_prompt_change_changes_the_output(server: ModelServer) -> None:
    a = await call(openai(server), [{"role": "user", "content": "first version"}])
    b = await call(openai(server), [{"role": "user", "content": "second version of it"}])
    assert (a.output, b.output) == ("echo: first version", "echo: second version of it")
    assert (a.input_tokens, b.input_tokens) == (5, 7)


async def test_max_tokens_truncates_with_finish_reason_length(server: ModelServer) -> None:
    r = await call(openai(server, max_tokens=2), [{"role": "user", "content": "one two three four"}])
    assert r.output == "echo: one"
    assert r.output_tokens == 2
    assert r.metadata["finishReason"] == "length"


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "description": "Find an order",
            "parameters": {"type": "object", "properties": {"input": {"type": "string"}}, "required": ["input"]},
        },
    }
]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_tool_calls(server: ModelServer, provider: str, stream: bool) -> None:
    model = openai(server) if provider == "openai" else anthropic(server)
    text = "please CALL_TOOL for order 42"
    r = await call(model, [{"role": "user", "content": text}], tools=TOOLS, stream=stream)
    assert r.status == "success", r.error
    assert r.output is None
    [tc] = r.tool_calls
    assert tc["type"] == "function"
    assert tc["id"].startswith("call_" if provider == "openai" else "toolu_")
    assert tc["function"]["name"] == "lookup_order"
    assert json.loads(tc["function"]["arguments"]) == {"input": text}
    assert r.metadata["finishReason"] == "tool_calls"
    assert r.input_tokens == 8  # 3 system words + 5 user words; tool definitions are not counted
    assert r.output_tokens == len(f"lookup_order {json.dumps({'input': text})}".split())
    body = server.requests[-1].body
    names = [t.get("name") or t["function"]["name"] for t in body["tools"]]
    assert names == ["lookup_order"]


async def test_bare_tool_definitions_are_wrapped_and_empty_tools_are_not_sent(server: ModelServer) -> None:
    bare = [{"name": "lookup_order", "description": "d", "parameters": {"type": "object", "properties": {}}}]
    r = await call(openai(server), [{"role": "user", "content": "CALL_TOOL"}], tools=bare)
    assert r.tool_calls[0]["function"]["name"] == "lookup_order"
    assert server.requests[-1].body["tools"][0]["type"] == "function"
    await call(openai(server), tools=[])
    assert "tools" not in server.requests[-1].body


# ---------------------------------------------------------------------------------------------------
# Prices


async def test_unknown_model_has_unknown_cost(server: ModelServer) -> None:
    r = await call(openai(server, name="my-finetune-not-in-the-map"))
    assert r.status == "success", r.error
    assert (r.input_tokens, r.output_tokens) == (6, 4)
    assert r.cost is None
    assert r.cost_known is False


async def test_price_override_for_an_unlisted_model(server: ModelServer) -> None:
    overrides = {"openai/my-finetune": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}}
    r = await call(openai(server, name="my-finetune"), price_overrides=overrides)
    assert r.cost == pytest.approx(6 * 1e-6 + 4 * 2e-6)
    assert r.cost_known is True
    assert r.metadata["priceSource"] == "override"


async def test_price_override_wins_over_the_map_and_accepts_per_million(server: ModelServer) -> None:
    overrides = {"gpt-4o-mini": {"input_cost_per_million_tokens": 10.0, "output_cost_per_million_tokens": 20.0}}
    r = await call(openai(server), price_overrides=overrides)
    assert r.cost == pytest.approx(6 * 10e-6 + 4 * 20e-6)


async def test_estimate_cost() -> None:
    gpt = ModelConfig(provider="openai", name="gpt-4o-mini")
    assert estimate_cost(gpt, 1000, 500) == pytest.approx(map_price("gpt-4o-mini", 1000, 500))
    assert estimate_cost(ModelConfig(provider="openai", name="not-a-real-model-xyz"), 10, 10) is None
    overrides = {"openai/not-a-real-model-xyz": {"input_cost_per_token": 0.5, "output_cost_per_token": 1.0}}
    unlisted = ModelConfig(provider="openai", name="not-a-real-model-xyz")
    assert estimate_cost(unlisted, 2, 3, CallSettings(price_overrides=overrides)) == pytest.approx(4.0)
    assert estimate_cost(local(), 1000, 1000) == 0.0
    with pytest.raises(ValueError, match="finite number"):
        CallSettings(price_overrides={"gpt-4o-mini": {"input_cost_per_token": -1}})
    with pytest.raises(ValueError, match="unknown keys"):
        CallSettings(price_overrides={"gpt-4o-mini": {"input_cost_per_1k": 1.0}})


async def test_estimate_tokens_is_offline_and_matches_litellm() -> None:
    litellm = llm.load_litellm()
    msgs = [{"role": "system", "content": SYSTEM}, *MESSAGES]
    for model in ("openai/gpt-4o-mini", "anthropic/claude-sonnet-4-5"):
        provider, name = model.split("/")
        n = estimate_tokens(ModelConfig(provider=provider, name=name), SYSTEM, MESSAGES)
        assert n == litellm.token_counter(model=model, messages=msgs)
        assert 6 <= n < 40
    with_tools = estimate_tokens(ModelConfig(provider="openai", name="gpt-4o-mini"), SYSTEM, MESSAGES, TOOLS)
    assert with_tools > estimate_tokens(ModelConfig(provider="openai", name="gpt-4o-mini"), SYSTEM, MESSAGES)


# ---------------------------------------------------------------------------------------------------
# Retries


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_429_then_ok_is_one_success_with_one_retry(server: ModelServer, provider: str) -> None:
    server.script(["429", "ok"])
    model = openai(server) if provider == "openai" else anthropic(server)
    r = await call(model)
    assert r.status == "success", r.error
    assert r.output == "echo: hello there world"
    assert r.metadata["retries"] == 1 and r.metadata["attempts"] == 2
    assert r.metadata["retriedErrors"] == ["RateLimitError (429)"]
    assert [q.behaviour for q in server.requests] == ["429", "ok"]
    assert (r.input_tokens, r.output_tokens) == (6, 4)  # only the successful attempt counts


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_500_twice_then_ok(server: ModelServer, provider: str, stream: bool) -> None:
    server.script(["500", "500", "ok"])
    model = openai(server) if provider == "openai" else anthropic(server)
    r = await call(model, stream=stream)
    assert r.status == "success", r.error
    assert r.metadata["retries"] == 2
    assert len(server.requests) == 3


async def test_retries_are_bounded_by_max_attempts(server: ModelServer) -> None:
    server.script(["503"] * 5)
    r = await call(openai(server), max_attempts=3)
    assert r.status == "error"
    assert r.error is not None
    assert r.error["type"] == "ServiceUnavailableError"
    assert r.error["message"].startswith("openai server error (503) after 3 attempts")
    assert r.metadata["attempts"] == 3 and r.metadata["statusCode"] == 503
    assert len(server.requests) == 3
    assert server.pending == ["503", "503"]


async def test_rate_limit_exhausted_message(server: ModelServer) -> None:
    r = await call(openai(server, name="mock-fail-429"), max_attempts=3)
    assert r.error is not None
    assert r.error["type"] == "RateLimitError"
    assert r.error["message"].startswith("rate limited by openai (429) after 3 attempts")
    assert (r.input_tokens, r.output_tokens, r.cost, r.cost_known) == (0, 0, None, False)


async def test_retry_after_is_honoured_but_capped(server: ModelServer) -> None:
    server.script(["429:30", "ok"])  # the provider asks for 30 s; the cap (0.05 s) wins
    with anyio.fail_after(5):
        r = await call(openai(server), backoff_cap=0.05)
    assert r.status == "success"
    assert r.metadata["retries"] == 1


async def test_dropped_connection_is_retried(server: ModelServer) -> None:
    server.script(["close", "ok"])
    r = await call(openai(server))
    assert r.status == "success", r.error
    assert r.metadata["retriedErrors"] == ["APIConnectionError"]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_stream_cut_midway_is_retried(server: ModelServer, provider: str) -> None:
    server.script(["cut", "ok"])
    model = openai(server) if provider == "openai" else anthropic(server)
    r = await call(model, stream=True)
    assert r.status == "success", r.error
    assert r.output == "echo: hello there world"
    assert r.metadata["retries"] == 1


# ---------------------------------------------------------------------------------------------------
# Failures that are not retried, and secrets


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_401_is_not_retried_and_leaks_no_key(
    server: ModelServer, provider: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = "OPENAI_API_KEY" if provider == "openai" else "ANTHROPIC_API_KEY"
    monkeypatch.setenv(env, SECRET)
    server.script(["401", "ok", "ok"])  # the server echoes the key it got in its error body
    model = openai(server) if provider == "openai" else anthropic(server)
    r = await call(model)
    assert r.status == "error"
    assert r.error == {"type": "AuthenticationError", "message": f"authentication failed for {provider}: check {env}"}
    assert r.metadata["attempts"] == 1 and r.metadata["statusCode"] == 401
    assert len(server.requests) == 1
    assert server.requests[0].api_key == SECRET  # the key came from the environment
    no_secret_anywhere(r, SECRET)
    err = r.to_model_error()
    assert err.code == "model_error"
    assert SECRET not in json.dumps(err.to_dict())


async def test_400_is_not_retried(server: ModelServer) -> None:
    server.script(["400", "ok"])
    r = await call(anthropic(server))
    assert r.error == {
        "type": "BadRequestError",
        "message": "anthropic rejected the request (400)",  # never the provider's own words
    }
    assert len(server.requests) == 1


async def test_404_names_the_model(server: ModelServer) -> None:
    server.script(["404"])
    r = await call(openai(server))
    assert r.error is not None
    assert r.error["type"] == "NotFoundError"
    assert "openai/gpt-4o-mini" in r.error["message"] and "check the model name" in r.error["message"]


async def test_credential_params_are_dropped_not_sent(server: ModelServer) -> None:
    model = openai(server, api_key=SECRET, extra_headers={"Authorization": f"Bearer {SECRET}", "X-Trace": "1"})
    r = await call(model)
    assert r.status == "success", r.error
    # No header may be set unless the operator allows its name (AGNT_TRACES_MODEL_HEADERS): all dropped.
    assert r.metadata["droppedParams"] == ["api_key", "extra_headers"]
    [req] = server.requests
    assert req.api_key == llm.LOCAL_API_KEY
    assert "x-trace" not in req.headers
    assert SECRET not in json.dumps(req.headers) + json.dumps(req.body)
    no_secret_anywhere(r, SECRET)


async def test_unknown_provider(server: ModelServer) -> None:
    r = await call(ModelConfig(provider="nosuch", name="model"))
    assert r.error is not None
    assert r.error["type"] == "BadRequestError"
    assert r.error["message"].startswith("unknown provider 'nosuch'")
    assert r.metadata["attempts"] == 1


async def test_the_placeholder_key_is_for_loopback_only() -> None:
    from agnt_traces.llm import calls
    from agnt_traces.llm.policy import ModelPolicy

    litellm = llm.load_litellm()
    bases = ["http://127.0.0.1:8000/v1", "http://localhost:11434", "http://[::1]:8000", "http://10.0.0.5:8000"]
    policy = ModelPolicy.build([*bases, "https://api.openai.com/v1"])
    for base, expected in [(b, True) for b in bases[:3]] + [("https://api.openai.com/v1", False), (None, False)]:
        params = {"api_base": base} if base else {}
        model = ModelConfig(provider="openai", name="gpt-4o-mini", params=params)
        if not expected:  # no OPENAI_API_KEY: refused before any request, never a placeholder
            with pytest.raises(calls.MissingKey):
                calls._prepare(litellm, model, "", MESSAGES, None, CallSettings(policy=policy))
            continue
        req = calls._prepare(litellm, model, "", MESSAGES, None, CallSettings(policy=policy))
        assert req.kwargs.get("api_key") == llm.LOCAL_API_KEY, base
        assert req.kwargs["num_retries"] == 0 and req.kwargs["max_retries"] == 0


# ---------------------------------------------------------------------------------------------------
# Timeouts and connection failures: errors, bounded in time


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_hanging_server_times_out(server: ModelServer, provider: str, stream: bool) -> None:
    server.script(["hang"])
    model = openai(server) if provider == "openai" else anthropic(server)
    with anyio.fail_after(5):
        r = await call(model, timeout=0.3, max_attempts=1, stream=stream)
    assert r.status == "error"
    assert r.error is not None
    assert r.error["type"] == "Timeout"
    assert r.error["message"].startswith(f"{provider}/{model.name} timed out after 0.3 s")
    assert 0.25 <= r.duration < 2.0


async def test_timeouts_are_retried_and_the_total_is_bounded(server: ModelServer) -> None:
    server.script(["hang", "slow:2.0"])
    with anyio.fail_after(5):
        r = await call(openai(server), timeout=0.2, max_attempts=2)
    assert r.error is not None
    assert r.error["message"] == "openai/gpt-4o-mini timed out after 0.2 s (2 attempts); " + (
        "raise the timeout if the model needs longer"
    )
    assert r.metadata["attempts"] == 2
    assert r.duration < 1.5


async def test_slow_but_within_the_timeout_succeeds(server: ModelServer) -> None:
    server.script(["slow:0.2"])
    r = await call(openai(server), timeout=3.0)
    assert r.status == "success", r.error
    assert r.duration >= 0.2


async def test_timeout_param_of_the_model_overrides_the_setting(server: ModelServer) -> None:
    server.script(["hang"])
    with anyio.fail_after(5):
        r = await call(openai(server, timeout=0.2), timeout=30.0, max_attempts=1)
    assert r.error is not None and r.error["type"] == "Timeout"
    assert "0.2 s" in r.error["message"]
    assert "timeout" not in server.requests[0].body


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_connection_refused(provider: str, monkeypatch: pytest.MonkeyPatch) -> None:
    dead = ModelServer().start()
    dead.stop()  # the port is closed now
    allow_endpoint(monkeypatch, dead.base_url)
    model = openai(dead) if provider == "openai" else anthropic(dead)
    with anyio.fail_after(10):
        r = await call(model, max_attempts=2)
    assert r.status == "error"
    assert r.error is not None
    assert r.error["type"] == "APIConnectionError"
    assert r.error["message"].startswith(f"connection to {provider} at http://127.0.0.1:{dead.port}")
    assert "after 2 attempts" in r.error["message"]
    assert r.metadata["attempts"] == 2


async def test_concurrent_calls_do_not_mix_up(server: ModelServer) -> None:
    results: dict[int, CallResult] = {}

    async def one(i: int) -> None:
        model = openai(server) if i % 2 else anthropic(server)
        results[i] = await call(model, [{"role": "user", "content": f"question number {i}"}], stream=i % 3 == 0)

    async with anyio.create_task_group() as tg:
        for i in range(12):
            tg.start_soon(one, i)
    for i, r in results.items():
        assert r.output == f"echo: question number {i}", r.error
        assert (r.input_tokens, r.output_tokens) == (6, 4)


async def test_model_error_carries_type_and_attempts(server: ModelServer) -> None:
    r = await call(openai(server, name="mock-fail-500"), max_attempts=2)
    err = r.to_model_error()
    assert err.to_dict()["error"]["code"] == "model_error"
    assert err.details == {
        "type": "InternalServerError",
        "provider": "openai",
        "model": "mock-fail-500",
        "attempts": 2,
        "statusCode": 500,
    }
    assert err.message == r.error["message"] if r.error else False


# ---------------------------------------------------------------------------------------------------
# The offline model: same code path, deterministic, real token counts, zero cost, no network


async def test_offline_model_is_deterministic_and_free() -> None:
    litellm = llm.load_litellm()
    a = await call(local())
    b = await call(local())
    assert a.status == "success", a.error
    assert a.output == b.output
    assert a.output is not None
    assert a.output.startswith("[agnt-local/echo] hello there world\n(local test model; ")
    assert 'system: "You are terse."' in a.output
    msgs = [{"role": "system", "content": SYSTEM}, *MESSAGES]
    assert a.input_tokens == litellm.token_counter(model="agnt-local/echo", messages=msgs)
    assert a.input_tokens == estimate_tokens(local(), SYSTEM, MESSAGES)
    assert a.output_tokens == litellm.token_counter(model="agnt-local/echo", text=a.output, count_response_tokens=True)
    assert a.total_tokens == a.input_tokens + a.output_tokens
    assert (a.cost, a.cost_known) == (0.0, True)
    assert (a.provider, a.model) == ("agnt-local", "echo")
    assert a.metadata["finishReason"] == "stop"


async def test_offline_model_output_follows_the_prompt() -> None:
    base = await call(local())
    other_system = await call(local(), system="You are verbose.\nSecond line.")
    second_line_only = await call(local(), system="You are terse.\nA new second line.")
    other_user = await call(local(), [{"role": "user", "content": "something else"}])
    outputs = {base.output, other_system.output, second_line_only.output, other_user.output}
    assert len(outputs) == 4  # any change of the prompt changes the answer (digest of everything sent)
    assert other_system.output is not None and 'system: "You are verbose."' in other_system.output


async def test_offline_model_streams_the_same_answer() -> None:
    plain = await call(local())
    streamed = await call(local(), stream=True)
    assert streamed.status == "success", streamed.error
    assert streamed.output == plain.output
    assert (streamed.input_tokens, streamed.output_tokens) == (plain.input_tokens, plain.output_tokens)
    assert streamed.cost == 0.0


async def test_offline_model_max_tokens_and_tools() -> None:
    short = await call(local(max_tokens=5))
    assert short.output_tokens == 5
    assert short.metadata["finishReason"] == "length"
    tool = await call(local(), [{"role": "user", "content": "CALL_TOOL please"}], tools=TOOLS)
    assert tool.tool_calls[0]["function"]["name"] == "lookup_order"
    assert json.loads(tool.tool_calls[0]["function"]["arguments"]) == {"input": "CALL_TOOL please"}
    assert tool.metadata["finishReason"] == "tool_calls"


async def test_offline_unknown_model_is_an_error() -> None:
    r = await call(ModelConfig(provider="agnt-local", name="nope"))
    assert r.error is not None
    assert r.error["type"] == "NotFoundError"
    assert "the offline test models are: echo" in r.error["message"]


# ---------------------------------------------------------------------------------------------------
# Scrubbing


@pytest.mark.parametrize(
    "text",
    [
        "Incorrect API key provided: sk-proj-abcDEF1234567890xyz.",
        "key sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789",
        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N",
        "headers {'x-api-key': 'abcd1234efgh5678'}",
        "url https://generativelanguage.googleapis.com/v1/models?key=AIzaSyA-1234567890abcdefghijklmnopqrstu",
        'api_key="hunter2-is-my-password"',
        "aws AKIAIOSFODNN7EXAMPLE and ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    ],
)
async def test_scrub_removes_secrets(text: str) -> None:
    out = scrub(text)
    assert "[REDACTED]" in out
    for secret in (
        "abcDEF1234567890",
        "abcdefghijklmnopqrstuvwxyz0123456789",
        "dozjgNryP4J3jVmNHl0w5N",
        "abcd1234efgh5678",
        "1234567890abcdefghijklmnopqrstu",
        "hunter2",
        "AKIAIOSFODNN7EXAMPLE",
    ):
        assert secret not in out


async def test_scrub_removes_environment_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_PROVIDER_API_KEY", "plainvalue-without-known-prefix")
    assert scrub("got plainvalue-without-known-prefix back") == "got [REDACTED] back"
    assert scrub("max_tokens: 100, temperature: 0.5") == "max_tokens: 100, temperature: 0.5"


async def test_secret_param_names() -> None:
    secret = [
        "api_key",
        "x-api-key",
        "openai_api_key",
        "token",
        "access_token",
        "aws_secret_access_key",
        "client_secret",
        "Authorization",
        "password",
        "key",
    ]
    public = [
        "max_tokens",
        "max_completion_tokens",
        "budget_tokens",
        "temperature",
        "api_base",
        "top_p",
        "prompt_cache_key",
        "stop",
        "seed",
    ]
    assert all(llm.is_secret_name(n) for n in secret)
    assert not any(llm.is_secret_name(n) for n in public)
    kept, dropped = llm.scrub_params({"max_tokens": 5, "api_key": "x", "extra_headers": {"X-Api-Key": "y", "A": "b"}})
    assert kept == {"max_tokens": 5, "extra_headers": {"A": "b"}}
    assert dropped == ["api_key", "extra_headers.X-Api-Key"]


# ---------------------------------------------------------------------------------------------------
# The model server itself


async def test_model_server_records_and_resets(server: ModelServer) -> None:
    with pytest.raises(ValueError, match="unknown model server behaviour"):
        server.script(["explode"])
    server.script(["500"])
    await call(openai(server), max_attempts=1)
    assert [q.behaviour for q in server.requests] == ["500"]
    server.reset()
    assert server.requests == [] and server.pending == []


async def test_model_server_checks_the_expected_key(server: ModelServer, monkeypatch: pytest.MonkeyPatch) -> None:
    server.expected_api_key = "sk-right-key-123456"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-key-123456")
    r = await call(openai(server))
    assert r.error is not None and r.error["type"] == "AuthenticationError"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-right-key-123456")
    assert (await call(openai(server))).status == "success"


async def test_no_network_beyond_loopback() -> None:
    import socket

    with expect_blocked() as blocked, pytest.raises(RuntimeError, match="network access blocked"):
        socket.create_connection(("api.openai.com", 443), timeout=1)
    assert len(blocked) == 1

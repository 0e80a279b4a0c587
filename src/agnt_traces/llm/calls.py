"""Calling a model: one code path for every provider, through LiteLLM, with our own retry policy.

``call_model`` never raises for a model or provider failure: it returns a :class:`CallResult` with
``status="error"`` and a short, scrubbed ``error``; the caller records the trace and then raises
:class:`~agnt_traces.errors.ModelError` (``result.to_model_error()``).

Retries (ours, not LiteLLM's or the provider SDK's, which are switched off): 429, 5xx, timeouts and
connection errors are retried up to ``max_attempts`` with exponential backoff and full jitter, capped,
and never shorter than a ``retry-after`` the provider sent (itself capped). 4xx auth and validation
errors are never retried. ``timeout`` bounds each attempt as a whole, streaming included.

Keys come from the environment only (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``...): credential-like
model params are dropped before the call and never returned. A model whose ``api_base`` is a loopback
address gets the placeholder key ``sk-local`` when its provider's key is not set (local servers and
tests; the SDKs refuse to send a request without some key).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import math
import random
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio

from agnt_traces.errors import ModelError
from agnt_traces.llm._runtime import load_litellm, preload
from agnt_traces.llm.failures import CallContext, EmptyResponse, Failure, classify
from agnt_traces.llm.pricing import (
    LOCAL_PROVIDER,
    check_overrides,
    override_for,
    price_from_map,
    price_from_override,
)
from agnt_traces.llm.scrub import scrub, scrub_params
from agnt_traces.models import ModelConfig

__all__ = [
    "LOCAL_API_KEY",
    "CallResult",
    "CallSettings",
    "build_messages",
    "call_model",
    "estimate_cost",
    "estimate_tokens",
]

log = logging.getLogger("agnt_traces.llm")

LOCAL_API_KEY = "sk-local"

# Params that this module owns: ignored when they come in model.params (reported in metadata).
_IGNORED_PARAMS = frozenset(
    {
        "model",
        "messages",
        "tools",
        "stream",
        "num_retries",
        "max_retries",
        "fallbacks",
        "context_window_fallback_dict",
        "mock_response",
        "mock_tool_calls",
        "mock_timeout",
        "custom_llm_provider",
        "litellm_logging_obj",
        "acompletion",
    }
)


@dataclass(slots=True)
class CallSettings:
    timeout: float = 60.0  # per attempt, seconds (model.params["timeout"] overrides it per model)
    max_attempts: int = 3  # retried: 429, 5xx, timeouts, connection errors; never 4xx auth/validation
    backoff_base: float = 0.5  # exponential backoff with full jitter ...
    backoff_cap: float = 8.0  # ... capped
    # "provider/name" (or "name") -> {"input_cost_per_token": .., "output_cost_per_token": ..}
    # (or "input_cost_per_million_tokens" / "output_cost_per_million_tokens"); wins over the price map
    price_overrides: dict[str, dict[str, float]] = field(default_factory=dict)
    stream: bool = False

    def __post_init__(self) -> None:
        if not (self.timeout > 0 and math.isfinite(self.timeout)):
            raise ValueError("timeout must be a positive number of seconds")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.backoff_base < 0 or self.backoff_cap < 0:
            raise ValueError("backoff_base and backoff_cap must be >= 0")
        check_overrides(self.price_overrides)


@dataclass(slots=True)
class CallResult:
    output: str | None
    tool_calls: list[dict[str, Any]]  # OpenAI style [{"id", "type": "function", "function": {"name", "arguments"}}]
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost: float | None  # USD; None when the price is unknown
    cost_known: bool
    duration: float  # seconds, wall clock of the whole call including retries
    status: Literal["success", "error"]
    error: dict[str, str] | None  # {"type": "RateLimitError", "message": "..."}, scrubbed
    provider: str
    model: str
    metadata: dict[str, Any]  # attempts, retries, finishReason, responseId, ...

    @property
    def ok(self) -> bool:
        return self.status == "success"

    def to_model_error(self) -> ModelError:
        """The ``model_error`` to raise for a failed call (after recording its trace)."""
        err = self.error or {"type": "APIError", "message": f"calling {self.provider}/{self.model} failed"}
        details: dict[str, Any] = {
            "type": err["type"],
            "provider": self.provider,
            "model": self.model,
            "attempts": self.metadata.get("attempts", 1),
        }
        if self.metadata.get("statusCode") is not None:
            details["statusCode"] = self.metadata["statusCode"]
        return ModelError(err["message"], details)


# ---------------------------------------------------------------------------------------------------
# Request preparation


def build_messages(system: str, messages: list[Any]) -> list[dict[str, Any]]:
    """The LiteLLM message list: the system message first when ``system`` is non-empty."""
    out: list[dict[str, Any]] = []
    if system:
        out.append({"role": "system", "content": system})
    for m in messages:
        if hasattr(m, "model_dump"):
            m = m.model_dump()
        out.append(dict(m))
    return out


def _normalize_tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """OpenAI-style function tools; bare ``{name, parameters}`` / Anthropic ``{name, input_schema}``
    definitions are wrapped. An empty list means no tools (providers reject ``tools: []``)."""
    if not tools:
        return None
    out = []
    for tool in tools:
        if "type" not in tool and "name" in tool:
            fn: dict[str, Any] = {"name": tool["name"]}
            if tool.get("description"):
                fn["description"] = tool["description"]
            params = tool.get("parameters", tool.get("input_schema"))
            if params is not None:
                fn["parameters"] = params
            out.append({"type": "function", "function": fn})
        else:
            out.append(tool)
    return out


def _is_loopback(api_base: Any) -> bool:
    if not isinstance(api_base, str) or not api_base:
        return False
    host = urllib.parse.urlsplit(api_base if "://" in api_base else f"http://{api_base}").hostname
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _key_env(litellm: Any, model: ModelConfig) -> tuple[str, bool]:
    """(the environment variable holding the provider's key, whether a key is set)."""
    default = model.provider.upper().replace("-", "_") + "_API_KEY"
    try:
        env = litellm.validate_environment(model=model.litellm_model)
    except Exception:
        return default, False
    missing = env.get("missing_keys") or []
    return (missing[0] if missing else default), bool(env.get("keys_in_environment"))


@dataclass(slots=True)
class _Request:
    kwargs: dict[str, Any]
    messages: list[dict[str, Any]]
    stream: bool
    timeout: float
    ctx: CallContext
    notes: dict[str, Any]


def _prepare(
    litellm: Any,
    model: ModelConfig,
    system: str,
    messages: list[Any],
    tools: list[dict[str, Any]] | None,
    settings: CallSettings,
) -> _Request:
    params, dropped = scrub_params(dict(model.params))
    notes: dict[str, Any] = {}
    if dropped:
        notes["droppedParams"] = sorted(dropped)
        log.warning(
            "dropped credential-like params %s of %s: keys come from the environment", dropped, model.litellm_model
        )
    ignored = sorted(k for k in params if k in _IGNORED_PARAMS)
    for k in ignored:
        params.pop(k)
    if ignored:
        notes["ignoredParams"] = ignored
    timeout = settings.timeout
    if "timeout" in params:
        value = params.pop("timeout")
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 and math.isfinite(value):
            timeout = float(value)
    if "base_url" in params and "api_base" not in params:
        params["api_base"] = params.pop("base_url")
    api_base = params.get("api_base")
    key_env, has_key = _key_env(litellm, model) if model.provider != LOCAL_PROVIDER else ("", True)
    msgs = build_messages(system, messages)
    kwargs: dict[str, Any] = {
        **params,
        "model": model.litellm_model,
        "messages": msgs,
        "num_retries": 0,
        "max_retries": 0,
        "timeout": timeout,
        # Marks the call as this server's own: an app's AgntTracesCallback does not record it twice.
        "metadata": {"agnt_internal": "call"},
    }
    if (tool_list := _normalize_tools(tools)) is not None:
        kwargs["tools"] = tool_list
    if not has_key and _is_loopback(api_base):
        kwargs["api_key"] = LOCAL_API_KEY
    if settings.stream:
        kwargs["stream"] = True
        kwargs.setdefault("stream_options", {"include_usage": True})
    else:
        kwargs.pop("stream_options", None)
    ctx = CallContext(
        provider=model.provider,
        model=model.litellm_model,
        api_base=scrub(api_base) if isinstance(api_base, str) else None,
        timeout=timeout,
        key_env=key_env,
    )
    return _Request(kwargs, msgs, settings.stream, timeout, ctx, notes)


# ---------------------------------------------------------------------------------------------------
# The call


async def _attempt(litellm: Any, req: _Request) -> tuple[Any, float | None]:
    if not req.stream:
        return await litellm.acompletion(**req.kwargs), None
    started = time.perf_counter()
    first: float | None = None
    chunks = []
    stream = await litellm.acompletion(**req.kwargs)
    try:
        async for chunk in stream:
            if first is None and _chunk_has_output(chunk):
                first = time.perf_counter() - started
            chunks.append(chunk)
    finally:
        # A stream that broke (or was cancelled by the timeout) must give its connection back now,
        # not at garbage collection.
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            with anyio.move_on_after(1.0, shield=True), contextlib.suppress(Exception):
                await aclose()
    response = litellm.stream_chunk_builder(chunks, messages=req.messages)
    if response is None:
        raise EmptyResponse("the stream ended without any chunk")
    if first is None and not int(getattr(getattr(response, "usage", None), "completion_tokens", 0) or 0):
        raise EmptyResponse("the stream ended without any output")
    return response, first


def _chunk_has_output(chunk: Any) -> bool:
    try:
        delta = chunk.choices[0].delta
    except (AttributeError, IndexError):
        return False
    return bool(getattr(delta, "content", None) or getattr(delta, "tool_calls", None))


def _backoff(settings: CallSettings, attempt: int, retry_after: float | None) -> float:
    delay = random.uniform(0, min(settings.backoff_cap, settings.backoff_base * 2 ** (attempt - 1)))
    if retry_after is not None:
        delay = max(delay, min(retry_after, settings.backoff_cap))
    return delay


async def call_model(
    model: ModelConfig,
    system: str,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None = None,
    settings: CallSettings | None = None,
) -> CallResult:
    """Call ``model`` with the system prompt, messages and tools; never raises for model failures.

    The first call loads LiteLLM (3-5 s) on a worker thread; ``await preload()`` earlier to hide that.
    """
    settings = settings or CallSettings()
    started = time.perf_counter()
    try:
        litellm = await preload()
        started = time.perf_counter()  # a trace's duration is the call's, not LiteLLM's one-time import
    except Exception as exc:  # a broken install: still a failed call, not a crash
        log.exception("loading litellm failed")
        return _error_result(
            model,
            Failure("InternalError", "could not load LiteLLM", scrub(str(exc))[:300]),
            started,
            attempts=0,
            notes={},
        )
    try:
        req = _prepare(litellm, model, system, messages, tools, settings)
    except Exception as exc:
        return _error_result(
            model,
            Failure("BadRequestError", f"invalid request for {model.litellm_model}", scrub(str(exc))),
            started,
            0,
            {},
        )
    retried: list[str] = []
    attempt = 0
    while True:
        attempt += 1
        try:
            with anyio.fail_after(req.timeout):
                response, ttft = await _attempt(litellm, req)
        except Exception as exc:
            failure = classify(exc, req.ctx)
            if failure.retryable and attempt < settings.max_attempts:
                retried.append(f"{failure.type}" + (f" ({failure.status})" if failure.status else ""))
                await anyio.sleep(_backoff(settings, attempt, failure.retry_after))
                continue
            if retried:
                req.notes["retriedErrors"] = retried
            if not failure.retryable or settings.max_attempts == 1:
                log.debug("model call failed: %s", failure.summary)
            return _error_result(model, failure, started, attempt, req.notes)
        try:
            return _success_result(litellm, model, req, response, ttft, started, attempt, retried, settings)
        except Exception as exc:  # a response we cannot read is a failed call
            failure = Failure("APIError", f"{model.provider} sent a response that could not be read", scrub(str(exc)))
            return _error_result(model, failure, started, attempt, req.notes)


def _text_of(content: Any) -> str | None:
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content)


def _success_result(
    litellm: Any,
    model: ModelConfig,
    req: _Request,
    response: Any,
    ttft: float | None,
    started: float,
    attempts: int,
    retried: list[str],
    settings: CallSettings,
) -> CallResult:
    choice = response.choices[0]
    message = choice.message
    tool_calls = [
        {
            "id": tc.id,
            "type": "function",
            "function": {"name": tc.function.name, "arguments": tc.function.arguments or ""},
        }
        for tc in (getattr(message, "tool_calls", None) or [])
    ]
    usage = getattr(response, "usage", None)
    input_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
    output_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
    total_tokens = int(getattr(usage, "total_tokens", 0) or 0) or input_tokens + output_tokens

    override = override_for(model, settings.price_overrides)
    cost: float | None
    if override is not None:
        cost = price_from_override(override, input_tokens, output_tokens)
    else:
        hidden = getattr(response, "_hidden_params", None) or {}
        cost = hidden.get("response_cost")
        if not isinstance(cost, int | float) or not math.isfinite(cost):
            cost = price_from_map(model, input_tokens, output_tokens)
    metadata: dict[str, Any] = {
        "attempts": attempts,
        "retries": attempts - 1,
        "finishReason": getattr(choice, "finish_reason", None),
        "responseId": getattr(response, "id", None),
        "providerModel": getattr(response, "model", None),
        "stream": req.stream,
    }
    if ttft is not None:
        metadata["timeToFirstToken"] = round(ttft, 6)
    if retried:
        metadata["retriedErrors"] = retried
    if override is not None:
        metadata["priceSource"] = "override"
    cached = getattr(getattr(usage, "prompt_tokens_details", None), "cached_tokens", None)
    if isinstance(cached, int) and cached > 0:
        metadata["cachedInputTokens"] = cached
    reasoning = getattr(getattr(usage, "completion_tokens_details", None), "reasoning_tokens", None)
    if isinstance(reasoning, int) and reasoning > 0:
        metadata["reasoningTokens"] = reasoning
    metadata.update(req.notes)
    output = _text_of(getattr(message, "content", None))
    if tool_calls and not output:
        output = None  # providers differ ("" or null) when the answer is only tool calls
    return CallResult(
        output=output,
        tool_calls=tool_calls,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=total_tokens,
        cost=float(cost) if cost is not None else None,
        cost_known=cost is not None,
        duration=time.perf_counter() - started,
        status="success",
        error=None,
        provider=model.provider,
        model=model.name,
        metadata=metadata,
    )


def _error_result(
    model: ModelConfig, failure: Failure, started: float, attempts: int, notes: dict[str, Any]
) -> CallResult:
    metadata: dict[str, Any] = {"attempts": attempts, "retries": max(0, attempts - 1)}
    if failure.status is not None:
        metadata["statusCode"] = failure.status
    metadata.update(notes)
    return CallResult(
        output=None,
        tool_calls=[],
        input_tokens=0,
        output_tokens=0,
        total_tokens=0,
        cost=None,
        cost_known=False,
        duration=time.perf_counter() - started,
        status="error",
        error={"type": failure.type, "message": failure.message(attempts)},
        provider=model.provider,
        model=model.name,
        metadata=metadata,
    )


# ---------------------------------------------------------------------------------------------------
# Estimates (offline; they load LiteLLM, so the first use blocks 3-5 s: ``await preload()`` first)


def estimate_tokens(
    model: ModelConfig, system: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
) -> int:
    """Input tokens of this prompt for this model, counted offline with LiteLLM's tokenizers.

    For the offline model it is exactly the ``input_tokens`` a call reports.
    """
    litellm = load_litellm()
    msgs = build_messages(system, messages)
    tool_list = _normalize_tools(tools)
    try:
        return int(litellm.token_counter(model=model.litellm_model, messages=msgs, tools=tool_list))
    except Exception:  # odd content the tokenizer cannot read: a rough count rather than nothing
        log.debug("token_counter failed for %s", model.litellm_model, exc_info=True)
        chars = sum(len(str(m.get("content") or "")) for m in msgs)
        return max(1, chars // 4)


def estimate_cost(
    model: ModelConfig, input_tokens: int, output_tokens: int, settings: CallSettings | None = None
) -> float | None:
    """USD for these token counts: the user's override, else LiteLLM's price map; None if unknown."""
    override = override_for(model, settings.price_overrides if settings else None)
    if override is not None:
        return price_from_override(override, input_tokens, output_tokens)
    return price_from_map(model, input_tokens, output_tokens)

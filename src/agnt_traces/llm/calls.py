"""Calling a model: one code path for every provider, through LiteLLM, with our own retry policy.

``call_model`` never raises for a model or provider failure: it returns a :class:`CallResult` with
``status="error"`` and a short, scrubbed ``error``; the caller records the trace and then raises
:class:`~agnt_traces.errors.ModelError` (``result.to_model_error()``).

Retries (ours, not LiteLLM's or the provider SDK's, which are switched off): 429, 5xx, timeouts and
connection errors are retried up to ``max_attempts`` with exponential backoff and full jitter, capped,
and never shorter than a ``retry-after`` the provider sent (itself capped). 4xx auth and validation
errors are never retried. ``timeout`` bounds each attempt as a whole, streaming included.

What a call may send is the operator's :class:`~agnt_traces.llm.policy.ModelPolicy`: only allowlisted
params, an ``api_base`` only when it is one of the configured endpoints, headers only by allowed name,
a ``timeout`` clamped to the limit; everything else is dropped (and named in the call's metadata).
Keys come from the environment only: an endpoint configured as ``URL=ENV_NAME`` gets that variable's
value, any other call the provider's usual key (``OPENAI_API_KEY``...), which LiteLLM reads; an
endpoint on a loopback address gets the placeholder key ``sk-local`` when that is not set (local
servers and tests; the SDKs refuse to send a request without some key). A missing key fails the call
at once, before any request, naming the variable. Output beyond the policy's limit is cut
(``metadata.outputTruncated``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio

from agnt_traces.errors import ModelError
from agnt_traces.llm._runtime import load_litellm, preload
from agnt_traces.llm.failures import CallContext, EmptyResponse, Failure, classify
from agnt_traces.llm.litellm_seams import unobserved
from agnt_traces.llm.policy import Endpoint, ModelPolicy, parse_endpoint_url
from agnt_traces.llm.pricing import (
    LOCAL_PROVIDER,
    check_overrides,
    override_for,
    price_from_map,
    price_from_override,
)
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
MAX_TOOL_CALLS = 128  # tool calls kept from one answer (each one's arguments bounded like the output)


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
    # Where calls may go, which params they may carry, the output limit. None: read it from the
    # environment (AGNT_TRACES_MODEL_ENDPOINTS...) at each call, with ``timeout`` as the timeout limit.
    policy: ModelPolicy | None = None

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


def _is_key_name(name: str) -> bool:
    """``OPENAI_API_KEY``, ``GEMINI_API_KEY``, ``HF_TOKEN``: a credential, not ``OLLAMA_API_BASE``."""
    upper = name.upper()
    return upper.endswith(("_KEY", "_TOKEN")) and not upper.startswith("AWS_")


def _key_env(litellm: Any, model: ModelConfig) -> tuple[str, list[str]]:
    """(the environment variable holding the provider's key, the key variables that are missing).

    ``missing`` lists alternatives (Gemini: ``GOOGLE_API_KEY``, ``GEMINI_API_KEY``); it is empty when a
    key is set or the provider needs none that LiteLLM knows of.
    """
    default = model.provider.upper().replace("-", "_") + "_API_KEY"
    try:
        env = litellm.validate_environment(model=model.litellm_model)
    except Exception:
        return default, []
    names = [str(n) for n in env.get("missing_keys") or [] if _is_key_name(str(n))]
    if env.get("keys_in_environment") or not names:
        return default, []
    return names[0], names


class MissingKey(Exception):
    """The key a call needs is not in the server's environment (reported before any request)."""

    def __init__(self, provider: str, names: list[str]) -> None:
        super().__init__(", ".join(names))
        self.provider = provider
        self.names = names

    def failure(self) -> Failure:
        return Failure(
            "AuthenticationError",
            f"no API key for {self.provider}: set {' or '.join(self.names)} in the server's environment",
            hint="the offline model agnt-local/echo needs no key to try a prompt",
        )


@dataclass(slots=True)
class _Request:
    kwargs: dict[str, Any]
    messages: list[dict[str, Any]]
    stream: bool
    timeout: float
    ctx: CallContext
    notes: dict[str, Any]
    policy: ModelPolicy


def _policy(settings: CallSettings) -> ModelPolicy:
    return settings.policy if settings.policy is not None else ModelPolicy.from_env(max_timeout=settings.timeout)


def _api_key(litellm: Any, model: ModelConfig, endpoint: Endpoint | None) -> tuple[str | None, str]:
    """(the api_key to pass, or None to let LiteLLM read the provider's usual variable; the variable's name).

    Raises:
        MissingKey: the key this call needs is not set.
    """
    if model.provider == LOCAL_PROVIDER:
        return None, ""
    if endpoint is not None and endpoint.key_env:
        value = os.environ.get(endpoint.key_env)
        if not value:
            raise MissingKey(model.provider, [endpoint.key_env])
        return value, endpoint.key_env
    key_env, missing = _key_env(litellm, model)
    if not missing:
        return None, key_env
    if endpoint is not None and endpoint.loopback:
        return LOCAL_API_KEY, key_env
    raise MissingKey(model.provider, missing)


def _prepare(
    litellm: Any,
    model: ModelConfig,
    system: str,
    messages: list[Any],
    tools: list[dict[str, Any]] | None,
    settings: CallSettings,
) -> _Request:
    """The request LiteLLM gets, by the model policy.

    Raises:
        MissingKey: before any request, when the key is not in the environment.
    """
    policy = _policy(settings)
    filtered = policy.filter_params(dict(model.params))
    params = filtered.params
    notes: dict[str, Any] = {}
    if filtered.dropped:
        notes["droppedParams"] = sorted(filtered.dropped)
        log.warning(
            "dropped model params %s of %s: not allowed by this server's model policy",
            sorted(filtered.dropped),
            model.litellm_model,
        )
    if filtered.clamped:
        notes["clampedParams"] = sorted(filtered.clamped)
    timeout = float(params.pop("timeout", settings.timeout))
    api_base = params.get("api_base")
    if filtered.endpoint is not None and isinstance(api_base, str):  # what was checked is what is called
        params["api_base"] = api_base = _endpoint_text(api_base)
    api_key, key_env = _api_key(litellm, model, filtered.endpoint)
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
    if api_key is not None:
        kwargs["api_key"] = api_key
    if settings.stream:
        kwargs["stream"] = True
        kwargs.setdefault("stream_options", {"include_usage": True})
    else:
        kwargs.pop("stream_options", None)
    ctx = CallContext(
        provider=model.provider,
        model=model.litellm_model,
        called_api_base=api_base if isinstance(api_base, str) else None,
        timeout=timeout,
        key_env=key_env,
    )
    return _Request(kwargs, msgs, settings.stream, timeout, ctx, notes, policy)


def _endpoint_text(api_base: str) -> str:
    url = parse_endpoint_url(api_base)
    assert url is not None, "filter_params keeps only endpoints it could parse"
    return url.text()


# ---------------------------------------------------------------------------------------------------
# The call


async def _attempt(litellm: Any, req: _Request) -> tuple[Any, float | None]:
    if not req.stream:
        return await litellm.acompletion(**req.kwargs), None
    started = time.perf_counter()
    first: float | None = None
    chunks = []
    received = 0  # characters of output so far: a stream past the output limit is not read further
    stream = await litellm.acompletion(**req.kwargs)
    try:
        async for chunk in stream:
            if first is None and _chunk_has_output(chunk):
                first = time.perf_counter() - started
            chunks.append(chunk)
            received += _chunk_chars(chunk)
            if received > req.policy.max_output_chars:
                break
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


def _chunk_chars(chunk: Any) -> int:
    try:
        delta = chunk.choices[0].delta
    except (AttributeError, IndexError):
        return 0
    total = len(getattr(delta, "content", None) or "")
    for tc in getattr(delta, "tool_calls", None) or []:
        total += len(getattr(getattr(tc, "function", None), "arguments", None) or "")
    return total


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
        log.error("loading litellm failed (%s)", type(exc).__name__)
        return _error_result(model, Failure("InternalError", "could not load LiteLLM"), started, attempts=0, notes={})
    try:
        req = _prepare(litellm, model, system, messages, tools, settings)
    except MissingKey as missing:
        return _error_result(model, missing.failure(), started, 0, {"missingKey": missing.names})
    except Exception as exc:
        log.debug("preparing the call to %s failed (%s)", model.litellm_model, type(exc).__name__)
        return _error_result(
            model, Failure("BadRequestError", f"invalid request for {model.litellm_model}"), started, 0, {}
        )
    retried: list[str] = []
    attempt = 0
    while True:
        attempt += 1
        try:
            with anyio.fail_after(req.timeout), unobserved(litellm):
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
        except Exception:  # a response we cannot read is a failed call
            failure = Failure("APIError", f"{model.provider} sent a response that could not be read")
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
    policy = req.policy
    raw_calls = list(getattr(message, "tool_calls", None) or [])
    truncated = len(raw_calls) > MAX_TOOL_CALLS
    tool_calls = []
    for tc in raw_calls[:MAX_TOOL_CALLS]:
        arguments, cut = policy.output_limit(str(tc.function.arguments or ""))
        truncated = truncated or cut
        tool_calls.append(
            {
                "id": str(tc.id)[:256],
                "type": "function",
                "function": {"name": str(tc.function.name)[:256], "arguments": arguments},
            }
        )
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
    if output is not None and len(output) > policy.max_output_chars:
        metadata["outputChars"] = len(output)
        output, truncated = output[: policy.max_output_chars], True
    if truncated:
        metadata["outputTruncated"] = True
        metadata["maxOutputChars"] = policy.max_output_chars
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

"""The built-in offline model ``agnt-local/echo``: a local TEST model, no network, no key, no cost.

It is a LiteLLM custom provider (``litellm.custom_provider_map``), so a call to it goes through
exactly the same ``call_model`` → ``litellm.acompletion`` path as a real provider: retries, usage,
cost, streaming and error mapping included. The demo and the quick start run on it.

What ``echo`` answers (deterministic — the same request always gets the same answer)::

    [agnt-local/echo] <text of the last user message>
    (local test model; system: "<first line of the system prompt>"; 2 messages; digest 1a2b3c4d)

The digest is a hash of everything the model was sent (all messages and tool definitions), so ANY
prompt change shows up in the output and in a diff. Token counts are real (LiteLLM's
``token_counter``, the same numbers ``estimate_tokens`` gives before the call); ``max_tokens``
truncates the answer to that many tokens with finish reason ``length``. With ``tools`` and a last
user message containing ``CALL_TOOL``, it answers with one call to the first tool, arguments
``{"input": <the user text>}``. The price is registered as 0.

This module imports LiteLLM and is therefore imported only by ``_runtime.load_litellm``.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

__all__ = ["MODELS", "PROVIDER", "count_input_tokens", "count_output_tokens", "register"]

PROVIDER = "agnt-local"
MODELS = ("echo",)
_USER_PREVIEW = 2000
_SYSTEM_PREVIEW = 120


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            p.get("text", "") if isinstance(p, dict) else str(p)
            for p in content
            if not isinstance(p, dict) or isinstance(p.get("text"), str)
        )
    return str(content)


def count_input_tokens(litellm: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> int:
    return int(litellm.token_counter(model=f"{PROVIDER}/echo", messages=messages, tools=tools or None))


def count_output_tokens(litellm: Any, text: str) -> int:
    return int(litellm.token_counter(model=f"{PROVIDER}/echo", text=text, count_response_tokens=True))


def _digest(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
    blob = json.dumps({"messages": messages, "tools": tools or []}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


class _Answer:
    def __init__(self, litellm: Any, model: str, messages: list[dict[str, Any]], params: dict[str, Any]):
        if model not in MODELS:
            raise _error(
                litellm,
                404,
                f"agnt-local has no model {model!r}; the offline test models are: {', '.join(MODELS)}",
            )
        tools = params.get("tools") or None
        system = next((_text(m.get("content")) for m in messages if m.get("role") == "system"), "")
        last = messages[-1] if messages else {}
        user = next((_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
        self.input_tokens = count_input_tokens(litellm, messages, tools)
        self.tool_call: dict[str, Any] | None = None
        self.finish_reason = "stop"
        if tools and last.get("role") == "user" and "CALL_TOOL" in user:
            fn = tools[0].get("function") or tools[0]
            args = json.dumps({"input": user})
            self.tool_call = {
                "id": "call_local_" + hashlib.sha256(user.encode()).hexdigest()[:12],
                "type": "function",
                "function": {"name": str(fn.get("name", "tool")), "arguments": args},
            }
            self.text = ""
            self.output_tokens = count_output_tokens(litellm, f"{fn.get('name', 'tool')} {args}")
            self.finish_reason = "tool_calls"
            return
        first_line = system.strip().splitlines()[0] if system.strip() else ""
        if len(first_line) > _SYSTEM_PREVIEW:
            first_line = first_line[: _SYSTEM_PREVIEW - 1] + "…"
        said = user if len(user) <= _USER_PREVIEW else user[: _USER_PREVIEW - 1] + "…"
        text = (
            f"[agnt-local/echo] {said}\n"
            f'(local test model; system: "{first_line}"; {len(messages)} messages; '
            f"digest {_digest(messages, tools)})"
        )
        limit = params.get("max_completion_tokens") or params.get("max_tokens")
        if isinstance(limit, int) and limit > 0 and count_output_tokens(litellm, text) > limit:
            tokens = litellm.encode(model=f"{PROVIDER}/echo", text=text)
            text = litellm.decode(model=f"{PROVIDER}/echo", tokens=list(tokens)[:limit])
            self.finish_reason = "length"
        self.text = text
        self.output_tokens = count_output_tokens(litellm, text)

    def usage(self, litellm: Any) -> Any:
        return litellm.Usage(
            prompt_tokens=self.input_tokens,
            completion_tokens=self.output_tokens,
            total_tokens=self.input_tokens + self.output_tokens,
        )


def _error(litellm: Any, status: int, message: str) -> Exception:
    error_class = importlib.import_module("litellm.llms.custom_llm").CustomLLMError
    return error_class(status_code=status, message=message)


def _pieces(text: str) -> list[str]:
    words = text.split(" ")
    return [w + ("" if i == len(words) - 1 else " ") for i, w in enumerate(words)]


def _make_handler_class(litellm: Any) -> type:
    class AgntLocalLLM(litellm.CustomLLM):
        """LiteLLM custom provider ``agnt-local``: deterministic offline test models."""

        def _respond(self, model: str, messages: list[dict[str, Any]], kwargs: dict[str, Any]) -> Any:
            params = kwargs.get("optional_params") or {}
            ans = _Answer(litellm, model, messages, params)
            response = kwargs["model_response"]
            message = response.choices[0].message
            message.content = ans.text if ans.tool_call is None else None
            if ans.tool_call is not None:
                tool_call_class = importlib.import_module("litellm.types.utils").ChatCompletionMessageToolCall
                message.tool_calls = [tool_call_class(**ans.tool_call)]
            response.choices[0].finish_reason = ans.finish_reason
            response.model = f"{PROVIDER}/{model}"
            response.created = int(time.time())
            response.usage = ans.usage(litellm)
            return response

        def _chunks(self, model: str, messages: list[dict[str, Any]], kwargs: dict[str, Any]) -> list[Any]:
            params = kwargs.get("optional_params") or {}
            ans = _Answer(litellm, model, messages, params)
            usage = {
                "prompt_tokens": ans.input_tokens,
                "completion_tokens": ans.output_tokens,
                "total_tokens": ans.input_tokens + ans.output_tokens,
            }
            if ans.tool_call is not None:
                tool_use = {
                    "id": ans.tool_call["id"],
                    "type": "function",
                    "function": ans.tool_call["function"],
                    "index": 0,
                }
                return [
                    {
                        "text": "",
                        "tool_use": tool_use,
                        "is_finished": True,
                        "finish_reason": ans.finish_reason,
                        "usage": usage,
                        "index": 0,
                    }
                ]
            pieces = _pieces(ans.text)
            return [
                {
                    "text": piece,
                    "tool_use": None,
                    "is_finished": i == len(pieces) - 1,
                    "finish_reason": ans.finish_reason if i == len(pieces) - 1 else "",
                    "usage": usage if i == len(pieces) - 1 else None,
                    "index": 0,
                }
                for i, piece in enumerate(pieces)
            ]

        def completion(self, model: str, messages: list[dict[str, Any]], *args: Any, **kwargs: Any) -> Any:
            return self._respond(model, messages, kwargs)

        async def acompletion(self, model: str, messages: list[dict[str, Any]], *args: Any, **kwargs: Any) -> Any:
            # Counting tokens of a long prompt takes ~0.2 s of CPU (tiktoken releases the GIL): not on the loop.
            return await asyncio.to_thread(self._respond, model, messages, kwargs)

        def streaming(self, model: str, messages: list[dict[str, Any]], *args: Any, **kwargs: Any) -> Iterator[Any]:
            yield from self._chunks(model, messages, kwargs)

        async def astreaming(
            self, model: str, messages: list[dict[str, Any]], *args: Any, **kwargs: Any
        ) -> AsyncIterator[Any]:
            for chunk in await asyncio.to_thread(self._chunks, model, messages, kwargs):
                yield chunk

    return AgntLocalLLM


def register(litellm: Any) -> None:
    """Register ``agnt-local`` in ``litellm.custom_provider_map`` with a price of 0 (idempotent)."""
    handler = _make_handler_class(litellm)()
    litellm.custom_provider_map = [item for item in litellm.custom_provider_map if item.get("provider") != PROVIDER] + [
        {"provider": PROVIDER, "custom_handler": handler}
    ]
    prices = {
        f"{PROVIDER}/{name}": {
            "input_cost_per_token": 0.0,
            "output_cost_per_token": 0.0,
            "cache_creation_input_token_cost": 0.0,
            "cache_read_input_token_cost": 0.0,
            "litellm_provider": PROVIDER,
            "mode": "chat",
            "max_input_tokens": 1_000_000,
            "max_output_tokens": 100_000,
        }
        for name in MODELS
    }
    logger = logging.getLogger("LiteLLM")
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        litellm.register_model(prices)
    finally:
        logger.setLevel(previous)

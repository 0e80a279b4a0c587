"""Model calls through LiteLLM — the only package of AGNT Traces that touches litellm.

Importing it is cheap: LiteLLM (3-5 s to import) is loaded on the first call or estimate, or ahead of
time with ``await preload()``, always with the bundled (offline) price map and with its stdout
output switched off (stdout carries the MCP stdio protocol).

    result = await call_model(ModelConfig(provider="anthropic", name="claude-sonnet-4-5"),
                              system="You are terse.", messages=[{"role": "user", "content": "hi"}])
    if not result.ok:
        ...record the trace...
        raise result.to_model_error()

The built-in offline model ``agnt-local/echo`` (a deterministic local test model) needs no key and
no network. ``await aclose()`` at shutdown closes LiteLLM's cached HTTP clients.
"""

from typing import TYPE_CHECKING, Any

from agnt_traces.llm._runtime import aclose, is_loaded, load_litellm, preload
from agnt_traces.llm.scrub import is_secret_name, scrub, scrub_params

if TYPE_CHECKING:
    from agnt_traces.llm.calls import (
        LOCAL_API_KEY,
        CallResult,
        CallSettings,
        build_messages,
        call_model,
        estimate_cost,
        estimate_tokens,
    )
    from agnt_traces.llm.pricing import LOCAL_PROVIDER

# Loaded on first use: a module of the package (``llm.policy``, which the settings need) comes without the
# call path and the records it builds.
_LAZY = {
    "LOCAL_API_KEY": "calls",
    "CallResult": "calls",
    "CallSettings": "calls",
    "build_messages": "calls",
    "call_model": "calls",
    "estimate_cost": "calls",
    "estimate_tokens": "calls",
    "LOCAL_PROVIDER": "pricing",
}


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "LOCAL_API_KEY",
    "LOCAL_PROVIDER",
    "CallResult",
    "CallSettings",
    "aclose",
    "build_messages",
    "call_model",
    "estimate_cost",
    "estimate_tokens",
    "is_loaded",
    "is_secret_name",
    "load_litellm",
    "preload",
    "scrub",
    "scrub_params",
]

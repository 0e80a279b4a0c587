"""The one place that reaches into a private part of LiteLLM (pinned: litellm==1.110.2).

After every call, LiteLLM builds a logging payload for its callbacks (the cost again, a standard logging
object, copies of the messages) on a task of its own and on a thread, whether or not any callback is
registered: 1-3 ms of CPU that, on a server, competes with answering the caller (the GIL). LiteLLM has no
public switch for it. ``litellm._internal_context.internal_sub_call`` is the one it uses itself for calls
whose logging a parent call does: inside it, a call dispatches no success or failure logging at all.

:func:`unobserved` turns that on only while no callback of any kind is registered in the process, so no
event that anybody could receive is dropped: an application that registers its own LiteLLM callbacks
(an ``AgntTracesCallback``, an observability tool) gets every event as before. Nothing we record comes
from that logging: a call's cost is read from the response (``_hidden_params``) or the price map.
tests/llm/test_litellm_seams.py fails loudly when the pinned version changes behaviour.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from typing import Any

__all__ = ["CALLBACK_LISTS", "PINNED_LITELLM_VERSION", "has_callbacks", "unobserved"]

PINNED_LITELLM_VERSION = "1.110.2"

#: LiteLLM's module-level callback lists: a callback registered in any of them receives call events.
CALLBACK_LISTS = (
    "callbacks",
    "success_callback",
    "failure_callback",
    "input_callback",
    "service_callback",
    "_async_success_callback",
    "_async_failure_callback",
    "_async_input_callback",
)


def has_callbacks(litellm: Any) -> bool:
    """True when anything in this process listens to LiteLLM's call events."""
    return any(getattr(litellm, name, None) for name in CALLBACK_LISTS)


@contextlib.contextmanager
def unobserved(litellm: Any) -> Iterator[None]:
    """Calls made inside skip LiteLLM's logging, when no callback would receive it (see the module)."""
    if has_callbacks(litellm):
        yield
        return
    with _internal_sub_call()():
        yield


def _internal_sub_call() -> Any:
    return importlib.import_module("litellm._internal_context").internal_sub_call

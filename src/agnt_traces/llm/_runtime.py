"""Loading LiteLLM lazily, once, quietly and offline.

``import litellm`` costs 3-5 s and, left to itself, fetches its price map from the network, writes
debug records below WARNING to *stdout* (which would corrupt the MCP stdio transport) and prints
"Give Feedback / Get Help" banners to stdout on every provider error. Nothing in this project imports
litellm except through :func:`load_litellm`, which fixes all of that before handing the module out.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import warnings
from typing import Any

import anyio

from agnt_traces.gcpolicy import settle

__all__ = ["aclose", "is_loaded", "load_litellm", "preload"]

log = logging.getLogger("agnt_traces.llm")

_LITELLM_LOGGERS = ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy")

_lock = threading.Lock()
_litellm: Any = None


def is_loaded() -> bool:
    """True once LiteLLM has been imported and configured by this module."""
    return _litellm is not None


def load_litellm() -> Any:
    """Import and configure LiteLLM (blocking, 3-5 s the first time; thread safe; then free)."""
    global _litellm
    if _litellm is not None:
        return _litellm
    with _lock:
        if _litellm is not None:
            return _litellm
        # Offline price map: the bundled one, never a 5 s network fetch at import (the user may
        # still opt in by setting the variable to False themselves).
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        # LiteLLM attaches a handler that writes records below WARNING to stdout, and logs at DEBUG
        # while importing: silence its loggers until _configure has removed that handler.
        loggers = [logging.getLogger(name) for name in _LITELLM_LOGGERS]
        was_disabled = [lg.disabled for lg in loggers]
        for lg in loggers:
            lg.disabled = True
        try:
            with warnings.catch_warnings():
                # Third-party deprecation noise at import time is not ours to act on; anything else
                # (and every warning at call time) still goes through the normal filters.
                warnings.simplefilter("ignore", DeprecationWarning)
                warnings.simplefilter("ignore", PendingDeprecationWarning)
                module = importlib.import_module("litellm")
            _configure(module)
        finally:
            for lg, disabled in zip(loggers, was_disabled, strict=True):
                lg.disabled = disabled
        from agnt_traces.llm import offline  # needs litellm; imported only now

        offline.register(module)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _warm_up(module)
        _litellm = module
        settle()  # in a server: LiteLLM's objects are kept for life, later collections skip them (gcpolicy)
        log.debug("litellm %s loaded", getattr(module, "__version__", "?"))
        return module


def _configure(litellm: Any) -> None:
    litellm.suppress_debug_info = True  # else: banners printed to stdout on every exception
    litellm.set_verbose = False  # else: print() of debug text to stdout
    litellm.disable_hf_tokenizer_download = True  # token_counter must never reach the Hugging Face hub
    litellm.telemetry = False  # legacy flag; harmless where unused
    # LiteLLM's own handler routes records below WARNING to stdout. Drop it: records propagate to the
    # application's (stderr) logging like every other library's, and stay quiet by default.
    own_handler = getattr(getattr(litellm, "_logging", None), "handler", None)
    user_level = os.environ.get("LITELLM_LOG")
    for name in _LITELLM_LOGGERS:
        logger = logging.getLogger(name)
        for h in list(logger.handlers):
            if h is own_handler or _writes_to_stdout(h):
                logger.removeHandler(h)
        logger.propagate = True
        if not user_level:
            logger.setLevel(logging.ERROR)


def _warm_up(litellm: Any) -> None:
    """Do LiteLLM's one-time lazy work now, while warnings are silenced.

    On its first call LiteLLM imports more modules and builds pydantic schemas, which emit warnings
    (pydantic ``ReadOnly`` TypedDict UserWarnings, ``PydanticDeprecatedSince211``) from inside the
    call; under ``-W error`` (our test suite) those would turn the first call of each kind into a
    failure. One offline call, plain and streamed, takes those paths here instead.
    """
    try:
        importlib.import_module("litellm.llms.github_copilot.per_user_auth")  # imported by every call
        messages = [{"role": "user", "content": "warm up"}]
        internal = {"agnt_internal": "warm-up"}  # never recorded by an app's AgntTracesCallback
        litellm.completion(model="agnt-local/echo", messages=messages, num_retries=0, max_retries=0, metadata=internal)
        chunks = list(
            litellm.completion(
                model="agnt-local/echo",
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
                num_retries=0,
                max_retries=0,
                metadata=internal,
            )
        )
        litellm.stream_chunk_builder(chunks, messages=messages)
    except Exception:  # not fatal: the real call will report whatever is wrong
        log.debug("litellm warm-up failed", exc_info=True)


def _writes_to_stdout(handler: logging.Handler) -> bool:
    import sys

    stream = getattr(handler, "stream", None)
    return stream is sys.stdout or type(handler).__name__ == "LevelRoutingStreamHandler"


async def preload() -> Any:
    """Load LiteLLM on a worker thread so the event loop keeps serving meanwhile."""
    if _litellm is not None:
        return _litellm
    return await anyio.to_thread.run_sync(load_litellm)


async def aclose() -> None:
    """Close LiteLLM's cached HTTP clients (call at shutdown, or at the end of an event loop).

    LiteLLM keeps one client per provider and event loop; an event loop that ends without this
    leaves their sockets to the garbage collector (ResourceWarning: unclosed transport).
    """
    if _litellm is None:
        return
    cleanup = importlib.import_module("litellm.llms.custom_httpx.async_client_cleanup")
    try:
        await cleanup.close_litellm_async_clients()
    except Exception:  # best effort at shutdown
        log.debug("closing litellm clients failed", exc_info=True)
    cache = getattr(_litellm, "in_memory_llm_clients_cache", None)
    if cache is not None:
        cache.flush_cache()
    # The module-level client (Anthropic streaming and others use it) is not in that cache. Close the
    # aiohttp session of its transport only: the transport opens a new session on next use, while
    # the client object, shared process-wide, stays usable.
    for name in ("module_level_aclient",):
        handler = getattr(_litellm, name, None)
        transport = getattr(getattr(handler, "client", None), "_transport", None)
        if transport is not None and hasattr(transport, "get_valid_client_session"):
            try:
                await transport.aclose()
            except Exception:
                log.debug("closing the %s session failed", name, exc_info=True)

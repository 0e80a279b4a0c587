"""The replay call cache and the spend guard: what replays and playground runs share.

An identical request (model, the params the policy lets it send, system prompt, messages, tools) made again
reuses the recorded response unless the caller asks for a fresh call: the new trace is marked
``metadata.cached`` and costs nothing. Before every real call the guard estimates its tokens (LiteLLM's
token counter) and dollars (the price map) and refuses it when the run's limit would be crossed.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from ..errors import InvalidArgument
from ..models import ModelConfig, Trace, canonical_json
from ..store.base import Store
from .runner import CallContext, Runner

if TYPE_CHECKING:
    from ..compiler.pipeline import CompileResult

__all__ = ["BudgetExceeded", "CachedCaller", "SpendGuard", "request_hash"]


class BudgetExceeded(InvalidArgument):
    """A call that would cross the run's spend limit; refused before it was made (code ``invalid_argument``)."""


def request_hash(runner: Runner, compiled: CompileResult, model: ModelConfig, salt: str = "") -> bytes:
    """sha256 of the canonical request: what makes two calls the same call."""
    manifest = runner.call_manifest(compiled, model)
    request = {
        "provider": model.provider,
        "name": model.name,
        "params": manifest.model.get("params", {}),
        "system": compiled.manifest["system"],
        "messages": compiled.messages,
        "tools": compiled.manifest["tools"] or [],
        "salt": salt,
    }
    return hashlib.sha256(canonical_json(request).encode()).digest()


@dataclass(slots=True)
class SpendGuard:
    """The spend limit of one replay run or playground session, in dollars and tokens (None: no limit).

    ``reserve`` books a call's estimate before it is made and ``settle`` replaces it with what the call
    really cost, so concurrent calls can never together cross the limit on their estimates.
    """

    max_usd: float | None
    max_tokens: int | None
    spent_usd: float = 0.0
    spent_tokens: int = 0
    reserved_usd: float = 0.0
    reserved_tokens: int = 0
    scope: str = "this replay"
    field_name: str = "budget_usd"
    _lock: anyio.Lock = field(default_factory=anyio.Lock)

    async def reserve(self, est_usd: float | None, est_tokens: int) -> tuple[float, int]:
        """Raises:
        BudgetExceeded: the call's estimate would cross the limit; the message gives the figures."""
        usd = est_usd or 0.0
        async with self._lock:
            if self.max_tokens is not None and self.spent_tokens + self.reserved_tokens + est_tokens > self.max_tokens:
                raise BudgetExceeded(
                    f"the next call (about {est_tokens:,} tokens) would take {self.scope} past its token limit "
                    f"of {self.max_tokens:,} ({self.spent_tokens + self.reserved_tokens:,} used so far); it was "
                    "not made: raise the limit or run fewer cases",
                    self._figures(usd, est_tokens),
                )
            if self.max_usd is not None and self.spent_usd + self.reserved_usd + usd > self.max_usd:
                raise BudgetExceeded(
                    f"the next call (about ${usd:.6f}) would take {self.scope} past its spend limit of "
                    f"${self.max_usd:.6f} (${self.spent_usd + self.reserved_usd:.6f} spent so far); it was not made: "
                    f"raise {self.field_name} or run fewer cases",
                    self._figures(usd, est_tokens),
                )
            self.reserved_usd += usd
            self.reserved_tokens += est_tokens
        return usd, est_tokens

    def settle(self, reserved: tuple[float, int], cost: float | None, tokens: int) -> None:
        self.reserved_usd -= reserved[0]
        self.reserved_tokens -= reserved[1]
        self.spent_usd += cost if cost is not None else reserved[0]
        self.spent_tokens += tokens

    def _figures(self, usd: float, tokens: int) -> dict[str, Any]:
        return {
            "field": self.field_name,
            "limitUsd": self.max_usd,
            "limitTokens": self.max_tokens,
            "spentUsd": round(self.spent_usd + self.reserved_usd, 9),
            "spentTokens": self.spent_tokens + self.reserved_tokens,
            "estimateUsd": round(usd, 9),
            "estimateTokens": tokens,
        }

    def figures(self) -> dict[str, Any]:
        return {
            "limitUsd": self.max_usd,
            "limitTokens": self.max_tokens,
            "spentUsd": round(self.spent_usd, 9),
            "spentTokens": self.spent_tokens,
        }


class CachedCaller:
    """Model calls through the cache (unless ``fresh``) and the spend guard; every call is a trace."""

    def __init__(self, store: Store, runner: Runner, *, fresh: bool = False, guard: SpendGuard | None = None) -> None:
        self.store = store
        self.runner = runner
        self.fresh = fresh
        self.guard = guard
        self.model_calls = 0
        self.cached_calls = 0

    def estimate(
        self, compiled: CompileResult, model: ModelConfig, expected_output_tokens: int | None
    ) -> tuple[float | None, int]:
        """(dollars or None when the price is unknown, tokens) this call is expected to cost."""
        from ..llm import estimate_cost, estimate_tokens

        tokens_in = estimate_tokens(model, compiled.manifest["system"], compiled.messages, compiled.manifest["tools"])
        max_out = model.params.get("max_tokens")
        tokens_out = expected_output_tokens if expected_output_tokens is not None else tokens_in
        if isinstance(max_out, int) and not isinstance(max_out, bool) and max_out > 0:
            tokens_out = max(tokens_out, max_out) if expected_output_tokens is None else min(tokens_out, max_out)
        usd = estimate_cost(model, tokens_in, tokens_out, self.runner.call_settings())
        return usd, tokens_in + tokens_out

    async def call(
        self,
        tenant: str,
        compiled: CompileResult,
        model: ModelConfig,
        ctx: CallContext,
        *,
        salt: str = "",
        expected_output_tokens: int | None = None,
    ) -> tuple[Trace, bool]:
        """(the trace, whether it was answered from the cache).

        Raises:
            BudgetExceeded: the call would cross the guard's limit; nothing was called or recorded.
        """
        key = request_hash(self.runner, compiled, model, salt)
        if not self.fresh:
            started = time.perf_counter()
            trace_id = await self.store.cache_get(tenant, key)
            original = await self.store.get_trace(tenant, trace_id) if trace_id else None
            if original is not None and original.status == "success":
                self.cached_calls += 1
                duration = time.perf_counter() - started
                return await self.runner.record_cached(tenant, original, compiled, model, ctx, duration), True
        reserved = (0.0, 0)
        if self.guard is not None:
            from ..llm import preload

            await preload()  # the token counter needs LiteLLM: loaded off the event loop the first time
            usd, tokens = self.estimate(compiled, model, expected_output_tokens)
            reserved = await self.guard.reserve(usd, tokens)
        trace: Trace | None = None
        try:
            self.model_calls += 1
            trace = await self.runner.run(tenant, compiled, model, ctx)
        finally:
            if self.guard is not None:
                self.guard.settle(reserved, trace.cost if trace else None, trace.total_tokens if trace else reserved[1])
        if trace.status == "success":
            await self.store.cache_put(tenant, key, trace.id)
        return trace, False

"""Running a compiled prompt on a model and recording the call as a trace: the one path every model
call of the server takes (prompt runs and playground runs alike)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..config import Settings
from ..errors import ModelError
from ..ids import ms_to_rfc3339, new_id, now_ms
from ..models import ErrorInfo, Manifest, ModelConfig, ModelInfo, Trace
from .traces import TraceService

if TYPE_CHECKING:
    from ..compiler.pipeline import CompileResult
    from ..llm import CallSettings

__all__ = ["CallContext", "Runner", "Usage", "checked_usage"]

#: Bounds of believable usage, the same as for ingested traces (``TraceIn``).
MAX_TOKENS = 10**12
MAX_COST = 1e6


@dataclass(slots=True)
class Usage:
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost: float | None
    invalid: dict[str, str]  # field → what the model reported, for the numbers that were refused


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _tokens(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and (not math.isfinite(value) or not value.is_integer()):
        return None
    count = int(value)
    return count if 0 <= count <= MAX_TOKENS else None


def checked_usage(input_tokens: Any, output_tokens: Any, total_tokens: Any, cost: Any) -> Usage:
    """The usage a model reported, with every absurd number refused: token counts that are negative, not
    whole, or over 10^12 become 0, a cost that is negative, not finite or over $10^6 becomes null (unknown),
    and so does a cost computed from refused token counts. ``invalid`` names each refused field."""
    invalid: dict[str, str] = {}
    counts: dict[str, int] = {}
    for name, value in (("inputTokens", input_tokens), ("outputTokens", output_tokens)):
        checked = _tokens(value)
        if checked is None:
            invalid[name] = _shown(value)
        counts[name] = checked or 0
    total = _tokens(total_tokens)
    derived = counts["inputTokens"] + counts["outputTokens"]
    if total is None or (not invalid and total < derived):
        invalid["totalTokens"] = _shown(total_tokens)
        total = derived
    checked_cost: float | None = None
    if cost is not None:
        a_number = not isinstance(cost, bool) and isinstance(cost, int | float) and math.isfinite(cost)
        if not a_number or not 0 <= cost <= MAX_COST:
            invalid["cost"] = _shown(cost)
        elif "inputTokens" in invalid or "outputTokens" in invalid:
            invalid["cost"] = f"{_shown(cost)} (computed from refused token counts)"
        else:
            checked_cost = float(cost)
    return Usage(counts["inputTokens"], counts["outputTokens"], total, checked_cost, invalid)


@dataclass(slots=True)
class CallContext:
    prompt_name: str | None
    prompt_version: int | None
    source: str = "run"
    session_id: str | None = None
    parent_trace_id: str | None = None
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


class Runner:
    def __init__(self, traces: TraceService, settings: Settings) -> None:
        self.traces = traces
        self.settings = settings

    def call_settings(self) -> CallSettings:
        from ..llm import CallSettings

        return CallSettings(
            timeout=self.settings.model_timeout,
            max_attempts=self.settings.model_max_attempts,
            price_overrides=self.settings.price_overrides,
            policy=self.settings.policy(),
        )

    def call_manifest(self, compiled: CompileResult, model: ModelConfig) -> Manifest:
        """The manifest a call of ``model`` with ``compiled`` records: its params as the policy lets them
        be sent (never a credential, an unknown param or a refused endpoint)."""
        manifest = dict(compiled.manifest)
        manifest["model"] = {
            **manifest["model"],
            "name": model.name,
            "provider": model.provider,
            "params": self.settings.policy().filter_params(dict(model.params)).params,
        }
        return Manifest.model_validate(manifest)

    async def record_cached(
        self,
        tenant: str,
        original: Trace,
        compiled: CompileResult,
        model: ModelConfig,
        ctx: CallContext,
        duration: float,
    ) -> Trace:
        """Record a call answered from ``original``'s recorded response instead of the model: a trace
        marked ``metadata.cached`` with cost 0 (what the original cost and took is kept in metadata)."""
        created = now_ms()
        metadata = {
            **ctx.metadata,
            "cached": True,
            "cachedFrom": original.id,
            "originalCost": original.cost,
            "originalDuration": original.duration,
        }
        trace = self._trace(
            tenant,
            created,
            compiled,
            model,
            ctx,
            metadata,
            output=original.output,
            tool_calls=original.tool_calls,
            input_tokens=original.input_tokens,
            output_tokens=original.output_tokens,
            total_tokens=original.total_tokens,
            cost=0.0,
            duration=round(duration, 6),
            model_metadata=dict(original.model.metadata),
            status=original.status,
            error=original.error,
        )
        await self.traces.record(tenant, trace)
        return trace

    async def run(self, tenant: str, compiled: CompileResult, model: ModelConfig, ctx: CallContext) -> Trace:
        """Call the model and record the trace, success or failure. Never raises for a model failure:
        the returned trace has ``status == "error"``; callers decide whether that is an error for them."""
        from ..llm import call_model

        created = now_ms()
        settings = self.call_settings()
        assert settings.policy is not None
        result = await call_model(
            model,
            compiled.manifest["system"],
            compiled.messages,
            compiled.manifest["tools"] or None,
            settings,
        )
        metadata = dict(ctx.metadata)
        usage = checked_usage(result.input_tokens, result.output_tokens, result.total_tokens, result.cost)
        if usage.invalid:
            metadata["invalidUsage"] = usage.invalid  # recorded, never stored as if it were true
        if result.metadata.get("outputTruncated"):
            metadata["outputTruncated"] = True
        trace = self._trace(
            tenant,
            created,
            compiled,
            model,
            ctx,
            metadata,
            output=result.output,
            tool_calls=result.tool_calls,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            total_tokens=usage.total_tokens,
            cost=usage.cost,
            duration=round(result.duration, 6),
            model_metadata=result.metadata,
            status=result.status,
            error=ErrorInfo.model_validate(result.error) if result.error else None,
        )
        await self.traces.record(tenant, trace)
        return trace

    def _trace(
        self,
        tenant: str,
        created: int,
        compiled: CompileResult,
        model: ModelConfig,
        ctx: CallContext,
        metadata: dict[str, Any],
        *,
        model_metadata: dict[str, Any],
        **call: Any,
    ) -> Trace:
        """A trace of one call: the compile context and the call's context, with ``call``'s outcome
        (output, tool calls, tokens, cost, duration, status, error)."""
        return Trace(
            id=new_id(created, scope=tenant),
            created_at=ms_to_rfc3339(created),
            prompt_name=ctx.prompt_name,
            prompt_version=ctx.prompt_version,
            etag=compiled.manifest["etag"],
            manifest=self.call_manifest(compiled, model),
            variables=compiled.variables,
            messages=compiled.messages,
            model=ModelInfo(provider=model.provider, name=model.name, metadata=model_metadata),
            tags=list(dict.fromkeys(ctx.tags)),
            metadata=metadata,
            source=ctx.source,  # type: ignore[arg-type]
            session_id=ctx.session_id,
            parent_trace_id=ctx.parent_trace_id,
            **call,
        )


def raise_for_error(trace: Trace) -> None:
    if trace.status == "error":
        err = trace.error
        raise ModelError(
            f"the model call failed ({err.type if err else 'error'}: {err.message if err else ''}); "
            f"it is recorded as trace {trace.id}",
            {"traceId": trace.id, "type": err.type if err else None},
        )

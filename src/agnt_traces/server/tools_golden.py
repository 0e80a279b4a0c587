"""MCP tools for golden cases, replays and the gate: pin_golden, list_golden, update_golden, unpin_golden,
set_gate, run_replay, get_replay."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from pydantic import Field

from ..golden_models import (
    GateSetting,
    GoldenCaseView,
    GoldenList,
    PinResult,
    ReplayStarted,
    ReplayView,
    UnpinResult,
)
from .common import DESTRUCTIVE, IDEMPOTENT_WRITE, MODEL_CALL, READ, app_of, tenant_of, tool_errors
from .progress import ProgressBeat
from .tools_prompts import PromptName

__all__ = ["register"]

CHECKS_HELP = (
    "expectations, each {type, value}: contains / not_contains / equals (text), regex (pattern), json (no value), "
    "json_schema (schema object), max_tokens (output tokens), max_cost (USD), max_duration (seconds)"
)
JUDGE_HELP = "optional {rubric, model}: a model grades each answer PASS/FAIL by the rubric (traces with source judge)"


def register(mcp: MCPServer[Any]) -> None:
    @mcp.tool(annotations=IDEMPOTENT_WRITE)
    @tool_errors
    async def pin_golden(
        ctx: Context[Any, Any],
        name: PromptName,
        trace_ids: Annotated[
            list[str] | None, Field(description="traces of this prompt to pin (at most 500); or give filter")
        ] = None,
        filter: Annotated[
            dict[str, Any] | None,
            Field(
                description="instead of trace_ids: list_traces arguments, e.g. {status: 'success', since: '7d', "
                "limit: 50} (limit up to 500; prompt_name is this prompt)"
            ),
        ] = None,
        required: Annotated[bool, Field(description="the case must pass for the gate to pass")] = False,
        checks: Annotated[list[dict[str, Any]] | None, Field(description=CHECKS_HELP)] = None,
        judge: Annotated[dict[str, Any] | None, Field(description=JUDGE_HELP)] = None,
    ) -> PinResult:
        """Pin traces as golden cases of a prompt: each keeps its exact compile context (variables, input
        messages, model, version) and its output as the reference that replays are compared with."""
        return await app_of(ctx).golden.pin(
            tenant_of(ctx), name, trace_ids=trace_ids, filter=filter, required=required, checks=checks, judge=judge
        )

    @mcp.tool(annotations=READ)
    @tool_errors
    async def list_golden(ctx: Context[Any, Any], name: PromptName) -> GoldenList:
        """A prompt's golden cases (expectations, model, reference preview) and its gate."""
        return await app_of(ctx).golden.list_cases(tenant_of(ctx), name)

    @mcp.tool(annotations=IDEMPOTENT_WRITE)
    @tool_errors
    async def update_golden(
        ctx: Context[Any, Any],
        name: PromptName,
        case_id: Annotated[str, Field(description="the case id, as list_golden shows it")],
        required: Annotated[bool | None, Field(description="omit to keep")] = None,
        checks: Annotated[list[dict[str, Any]] | None, Field(description=CHECKS_HELP + "; omit to keep")] = None,
        judge: Annotated[dict[str, Any] | None, Field(description=JUDGE_HELP + "; {} removes it; omit to keep")] = None,
    ) -> GoldenCaseView:
        """Change a golden case's expectations (its context and reference never change: pin again for new ones)."""
        return await app_of(ctx).golden.update(
            tenant_of(ctx), name, case_id, required=required, checks=checks, judge=judge
        )

    @mcp.tool(annotations=DESTRUCTIVE)
    @tool_errors
    async def unpin_golden(
        ctx: Context[Any, Any],
        name: PromptName,
        case_ids: Annotated[list[str], Field(description="case ids to remove")],
    ) -> UnpinResult:
        """Remove golden cases (their traces stay)."""
        return await app_of(ctx).golden.unpin(tenant_of(ctx), name, case_ids)

    @mcp.tool(annotations=IDEMPOTENT_WRITE)
    @tool_errors
    async def set_gate(
        ctx: Context[Any, Any],
        name: PromptName,
        policy: Annotated[
            dict[str, Any] | None,
            Field(
                description="{required_pass (default true), no_regressions (true), min_pass_rate (0-1), "
                "max_cost_increase (fraction, 0.1 = +10%), max_p95_increase (fraction)}; null removes the gate"
            ),
        ],
    ) -> GateSetting:
        """Gate a prompt: publish_prompt then needs a passing replay of exactly the draft (or run_gate=true, or
        an override_reason that is recorded on the version)."""
        return await app_of(ctx).golden.set_gate(tenant_of(ctx), name, policy)

    @mcp.tool(annotations=MODEL_CALL)
    @tool_errors
    async def run_replay(
        ctx: Context[Any, Any],
        name: PromptName,
        against: Annotated[
            str | int, Field(description="'draft' (default), a version number, a label, or 'session:<session id>'")
        ] = "draft",
        models: Annotated[
            list[dict[str, Any]] | None,
            Field(description="models to replay on, each {provider, name, params}; default the candidate's model"),
        ] = None,
        case_ids: Annotated[list[str] | None, Field(description="only these cases; default all golden cases")] = None,
        trials: Annotated[int, Field(description="calls per case and model, 1-5; >1 finds flaky cases")] = 1,
        budget_usd: Annotated[
            float | None,
            Field(description="spend limit of this replay in USD (default 10): a call that would cross it is not made"),
        ] = None,
        budget_tokens: Annotated[
            int | None, Field(description="token limit of this replay (default 5,000,000)")
        ] = None,
        fresh: Annotated[
            bool, Field(description="call the models even for requests answered before (default: reuse them, free)")
        ] = False,
    ) -> ReplayStarted:
        """Replay a prompt's golden cases with candidate content in the background; returns {id, status:
        'running', progress} at once. Poll get_replay(replay_id, wait_seconds=30) for the report."""
        return await app_of(ctx).golden.run(
            tenant_of(ctx),
            name,
            against=against,
            models=models,
            case_ids=case_ids,
            trials=trials,
            budget_usd=budget_usd,
            budget_tokens=budget_tokens,
            fresh=fresh,
        )

    @mcp.tool(annotations=READ)
    @tool_errors
    async def get_replay(
        ctx: Context[Any, Any],
        replay_id: Annotated[str, Field(description="the id run_replay returned")],
        wait_seconds: Annotated[
            float, Field(description="0-50: return when the replay is done or after this long")
        ] = 0,
    ) -> ReplayView:
        """A replay's status, summary (pass rate, regressions, cost and p95 against the references) and its
        cases worst first, each with its checks, output diff and deltas. Progress is reported while waiting."""
        beat = ProgressBeat(ctx)
        async with beat.running():
            return await app_of(ctx).golden.get(tenant_of(ctx), replay_id, wait_seconds=wait_seconds)

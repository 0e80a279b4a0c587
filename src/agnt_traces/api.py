"""The Python API for applications: run hosted prompts and get the response with its trace.

    import asyncio

    from agnt_traces import AgntTraces

    async def main() -> None:
        async with AgntTraces.open(db="traces.db", tenant="acme") as traces:
            result = await traces.run_prompt(  # the prompt's production version (publish_prompt makes one)
                "support-reply",
                variables={"company_name": "Acme", "tier": "premium"},
                messages=[{"role": "user", "content": "Where is my refund?"}],
            )
            print(result.output, result.trace["id"])

    asyncio.run(main())

Every call made this way is compiled by the sandboxed compiler, sent through LiteLLM and recorded as a
trace (``source: "run"``) with its full compilation context, ready for an agent to debug.

Reading traces gives typed objects with snake_case attributes; ``.render()`` gives the JSON the MCP tools
and the REST API return (camelCase names, times as RFC 3339 strings)::

    page = await traces.list_traces(prompt_name="support-reply", since="24h")
    for row in page.traces:                      # TraceSummary: row.id, row.created_at (epoch ms), row.cost …
        print(row.id, row.status, row.output_preview)
    trace = await traces.get_trace(page.traces[0].id)   # Trace: trace.messages, trace.output, trace.manifest …
    stats = await traces.trace_stats(group_by="model", since="7d")
    print(stats.groups[0].error_rate, stats.render()["groups"][0]["errorRate"])
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .app import App, open_app
from .config import Settings
from .models import Trace
from .services.ingest_results import IngestedTrace
from .services.queries import StatsQuery, TraceQuery, validate_query
from .services.trace_results import StatsResult, TraceList

if TYPE_CHECKING:
    from .services.prompt_results import PromptDetail, PromptList, PublishResult, RunPromptResult, UpsertResult

__all__ = ["AgntTraces", "RunResult"]


@dataclass(frozen=True, slots=True)
class RunResult:
    """A prompt run: the model's ``output`` and ``tool_calls``, the recorded ``trace`` (its JSON, as
    ``get_trace`` returns it) and the compiler's ``warnings``. ``result`` is the typed run result."""

    output: str | None
    tool_calls: list[dict[str, Any]]
    trace: dict[str, Any]
    warnings: list[str]
    result: RunPromptResult

    def render(self) -> dict[str, Any]:
        """The JSON ``run_prompt`` answers: ``{trace, warnings}``."""
        return {"trace": self.trace, "warnings": self.warnings}


class AgntTraces:
    def __init__(self, app: App, tenant: str) -> None:
        self.app = app
        self.tenant = tenant

    @classmethod
    @asynccontextmanager
    async def open(cls, db: str | None = None, tenant: str | None = None) -> AsyncIterator[AgntTraces]:
        settings = Settings.from_env(db=db, tenant=tenant)
        async with open_app(settings) as app:
            yield cls(app, settings.tenant)

    async def run_prompt(
        self,
        name: str,
        *,
        variables: dict[str, Any] | None = None,
        messages: list[dict[str, Any]] | None = None,
        label: str | None = None,
        version: int | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> RunResult:
        """Compile ``name`` (label ``production`` unless told otherwise), call its model, record the trace.

        Raises:
            NotFound: unknown prompt, version or label.
            CompileError: missing or mistyped variables, template errors.
            ModelError: the model call failed (it is recorded as a trace; its id is in ``details``).
        """
        result = await self.app.prompts.run(
            self.tenant,
            name,
            variables=variables,
            messages=messages,
            label=label,
            version=version,
            tags=tags,
            metadata=metadata,
        )
        trace = result.trace
        return RunResult(
            output=trace.output,
            tool_calls=trace.tool_calls,
            trace=trace.model_dump(mode="json"),
            warnings=result.warnings,
            result=result,
        )

    async def list_prompts(self) -> PromptList:
        """The tenant's prompts: ``.prompts`` holds one summary each (``.render()`` for JSON)."""
        return await self.app.prompts.list(self.tenant)

    async def get_prompt(self, name: str, *, version: int | None = None, label: str | None = None) -> PromptDetail:
        """A prompt's content (the draft, or a version or label's version) with its versions and history.

        Raises:
            NotFound: unknown prompt, version or label.
        """
        return await self.app.prompts.get(self.tenant, name, version=version, label=label)

    async def upsert_prompt(self, name: str, content: dict[str, Any], description: str | None = None) -> UpsertResult:
        """Create the prompt or replace its draft; the result has the draft's ``etag`` and template ``warnings``.

        Raises:
            InvalidArgument: bad content (naming every bad field).
            CompileError: a template that does not parse or is over the size limits.
        """
        return await self.app.prompts.upsert(self.tenant, name, content, description)

    async def publish_prompt(
        self, name: str, *, version: int | None = None, label: str = "production", note: str = ""
    ) -> PublishResult:
        """Publish the draft as a new version and point ``label`` at it; with ``version``, move the label there.

        Raises:
            NotFound: unknown prompt or version.
            Conflict: nothing to publish (the label already points at the draft's content).
        """
        return await self.app.prompts.publish(self.tenant, name, version=version, label=label, note=note)

    async def ingest_trace(self, trace: dict[str, Any]) -> IngestedTrace:
        """Record a trace made elsewhere (camelCase fields, as ``get_trace`` gives them): ``.id``, and
        ``.created`` (false: the same id and content were already stored).

        Raises:
            InvalidArgument: naming every bad field. Conflict: the same id with other content.
        """
        return await self.app.traces.ingest(self.tenant, trace)

    async def list_traces(self, **filters: Any) -> TraceList:
        """One page of compact rows (``page.traces``; ``page.next_cursor`` for the next page), with the
        filters of the ``list_traces`` tool as keywords: ``status``, ``prompt_name``, ``since="24h"``, ``tags``,
        ``query``, ``sort``, ``limit``, ``cursor`` … ``page.render()`` is the tool's JSON.

        Raises:
            InvalidArgument: an unknown filter or a bad value (the message names it), or a stale cursor.
        """
        return await self.app.traces.list(self.tenant, validate_query(TraceQuery, filters))

    async def get_trace(self, trace_id: str) -> Trace:
        """The whole trace (``trace.to_json()`` is the ``get_trace`` tool's JSON).

        Raises:
            NotFound: no such trace in this tenant.
        """
        return await self.app.traces.get(self.tenant, trace_id)

    async def trace_stats(
        self,
        group_by: str = "prompt",
        *,
        since: str | None = None,
        until: str | None = None,
        prompt_name: str | None = None,
    ) -> StatsResult:
        """Count, errors, error rate, tokens, cost and p50/p95 duration per group (``stats.groups``), over a
        window given as RFC 3339 or relative to now (``"24h"``). ``stats.render()`` is the tool's JSON.

        Raises:
            InvalidArgument: an unknown ``group_by`` or an unreadable time.
        """
        args = {"group_by": group_by, "since": since, "until": until, "prompt_name": prompt_name}
        return await self.app.traces.stats(self.tenant, validate_query(StatsQuery, args))

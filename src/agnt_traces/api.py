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
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from .app import App, open_app
from .config import Settings

__all__ = ["AgntTraces", "RunResult"]


@dataclass(frozen=True, slots=True)
class RunResult:
    output: str | None
    tool_calls: list[dict[str, Any]]
    trace: dict[str, Any]
    warnings: list[str]


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
        trace = result["trace"]
        return RunResult(
            output=trace["output"], tool_calls=trace["toolCalls"], trace=trace, warnings=result["warnings"]
        )

    async def upsert_prompt(self, name: str, content: dict[str, Any], description: str | None = None) -> dict[str, Any]:
        return await self.app.prompts.upsert(self.tenant, name, content, description)

    async def publish_prompt(
        self, name: str, *, version: int | None = None, label: str = "production", note: str = ""
    ) -> dict[str, Any]:
        return await self.app.prompts.publish(self.tenant, name, version=version, label=label, note=note)

    async def ingest_trace(self, trace: dict[str, Any]) -> dict[str, Any]:
        return (await self.app.traces.ingest(self.tenant, trace)).render()

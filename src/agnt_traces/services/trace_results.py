"""What the trace reads return: typed results that MCP, REST, the CLI and the Python API render.

Each class is also the published schema of its result: the MCP tool's ``outputSchema`` and the REST
operation's response in the OpenAPI document.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ..models import ErrorInfo, Manifest, ModelInfo
from ..records import StatsRow, TraceSummary
from ..wire import WireModel

__all__ = ["StatsResult", "TraceList", "TraceView"]


class TraceList(WireModel):
    """One page of ``list_traces``: compact rows and the cursor of the next page (null on the last)."""

    traces: list[TraceSummary]
    next_cursor: str | None = Field(description="pass it as `cursor` for the next page; null: no more rows")


class StatsResult(WireModel):
    """``trace_stats``: one row per group, largest first, over the window as it was asked for."""

    group_by: Literal["prompt", "version", "model", "status"]
    since: str | None = Field(description="the window's start as given (null: from the first trace)")
    until: str | None = Field(description="the window's end as given (null: now)")
    groups: list[StatsRow]


class TraceView(WireModel):
    """One trace as ``get_trace`` returns it: every field of the stored trace plus ``replayable`` (and,
    when false, ``replayIssues``). With ``fields`` only those come (``id`` always); with ``max_chars``
    every longer string is cut, so ``status`` and ``source`` are typed as plain strings here."""

    id: str
    created_at: str | None = Field(default=None, description="RFC 3339, UTC")
    prompt_name: str | None = None
    prompt_version: int | None = None
    etag: str | None = None
    manifest: Manifest | None = None
    variables: dict[str, Any] | None = None
    messages: list[dict[str, Any]] | None = None
    output: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    cost: float | None = Field(default=None, description="US dollars; null: not known")
    duration: float | None = Field(default=None, description="seconds; null: not reported")
    model: ModelInfo | None = None
    status: str | None = Field(default=None, description="success or error")
    error: ErrorInfo | None = None
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None
    source: str | None = Field(
        default=None, description="run, playground, ingest, litellm, otlp, replay or judge: how it was made"
    )
    session_id: str | None = None
    parent_trace_id: str | None = None
    replayable: bool | None = Field(default=None, description="run_prompt can call the model again with it")
    replay_issues: list[str] | None = Field(default=None, description="why it is not replayable")

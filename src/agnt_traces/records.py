"""Trace reads as the store takes and returns them: filters with resolved values, typed rows.

The store and the services both import this module (the store never imports the services). Filters hold
what a query means once the client's arguments are checked and resolved (times in epoch milliseconds);
rows are ``WireModel`` records with snake_case attributes that render as the JSON clients get, times as
RFC 3339 strings rendered only then.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

from .ids import ms_to_rfc3339, parse_time
from .wire import WireModel

__all__ = [
    "SORTS",
    "ModelGroup",
    "PromptGroup",
    "SortKey",
    "StatsFilter",
    "StatsGroup",
    "StatsRow",
    "StatusGroup",
    "TraceFilter",
    "TracePage",
    "TraceSummary",
    "UtcMillis",
    "VersionGroup",
    "stats_group",
]


def _millis(value: Any) -> Any:
    return parse_time(value, "time") if isinstance(value, str) else value


#: A time inside: epoch milliseconds. Rendered (and published in schemas) as an RFC 3339 string in UTC.
UtcMillis = Annotated[
    int,
    BeforeValidator(_millis),
    PlainSerializer(ms_to_rfc3339, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time", "description": "RFC 3339, UTC"}),
]

SortKey = Literal["created_at", "cost", "total_tokens", "duration"]
SORTS: tuple[str, ...] = ("created_at", "cost", "total_tokens", "duration")
GroupBy = Literal["prompt", "version", "model", "status"]


@dataclass(frozen=True, slots=True)
class TraceFilter:
    """Filters, sort and page of one ``list_traces`` read, resolved (``since_ms``/``until_ms``: epoch ms).

    ``since_text``/``until_text`` are the window as the client wrote it: a cursor is bound to these, not
    to the resolved times, so that a relative window ("24h") pages on while the clock moves.
    """

    status: Literal["success", "error"] | None = None
    prompt_name: str | None = None
    prompt_version: int | None = None
    model: str | None = None
    provider: str | None = None
    tags: tuple[str, ...] = ()
    since_ms: int | None = None
    until_ms: int | None = None
    min_cost: float | None = None
    min_duration: float | None = None
    min_total_tokens: int | None = None
    query: str | None = None  # full-text search; None: none (never blank)
    session_id: str | None = None
    source: str | None = None
    sort: SortKey = "created_at"
    order: Literal["asc", "desc"] = "desc"
    limit: int = 20
    cursor: str | None = None
    since_text: str | None = None
    until_text: str | None = None


@dataclass(frozen=True, slots=True)
class StatsFilter:
    """One ``trace_stats`` read: groups over the window [since_ms, until_ms) (None: open)."""

    group_by: GroupBy = "prompt"
    since_ms: int | None = None
    until_ms: int | None = None
    prompt_name: str | None = None


class TraceSummary(WireModel):
    """One compact ``list_traces`` row. ``created_at`` is epoch ms; it renders as RFC 3339."""

    id: str
    created_at: UtcMillis
    prompt_name: str | None
    prompt_version: int | None
    model: str  # provider/name
    status: Literal["success", "error"]
    total_tokens: int
    cost: float | None
    duration: float | None  # seconds; None: unknown
    tags: list[str]
    output_preview: str  # the output (or the error) on one line, at most 120 characters


@dataclass(slots=True)
class TracePage:
    """One page of summaries; ``next_cursor`` is None on the last page."""

    rows: list[TraceSummary]
    next_cursor: str | None


class StatusGroup(WireModel):
    status: Literal["success", "error"]


class ModelGroup(WireModel):
    provider: str
    model: str


class VersionGroup(WireModel):
    prompt_name: str | None
    prompt_version: int | None


class PromptGroup(WireModel):
    prompt_name: str | None


StatsGroup = StatusGroup | ModelGroup | VersionGroup | PromptGroup


def stats_group(group_by: str, key: tuple[Any, ...]) -> StatsGroup:
    """The label of a stats group from its roll-up key (see ``store.rollups.STATS_GROUPS``)."""
    if group_by == "status":
        return StatusGroup.model_construct(status="error" if key[0] else "success")
    if group_by == "model":
        return ModelGroup.model_construct(provider=key[0], model=key[1])
    if group_by == "version":
        return VersionGroup.model_construct(prompt_name=key[0] or None, prompt_version=key[1] or None)
    return PromptGroup.model_construct(prompt_name=key[0] or None)


class StatsRow(WireModel):
    """One ``trace_stats`` group: counts, tokens, cost (None: no priced call) and duration percentiles."""

    group: StatsGroup
    count: int
    errors: int
    error_rate: float
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost: float | None
    p50_duration: float | None
    p95_duration: float | None

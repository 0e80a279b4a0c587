"""The trace queries clients send (MCP tools, REST, the CLI, the web page), checked in one place.

``TraceQuery`` and ``StatsQuery`` hold the client's arguments as given ("since": "24h"); ``to_filter()``
resolves them into the store's filters (``records.TraceFilter``, ``records.StatsFilter``).
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import from_validation_error
from ..ids import parse_time
from ..models import MAX_INT
from ..records import SortKey, StatsFilter, TraceFilter

__all__ = ["StatsQuery", "TraceQuery", "validate_query"]

Q = TypeVar("Q", bound=BaseModel)


def _resolve(value: str | None, field: str) -> int | None:
    return None if value is None else parse_time(value, field)


class TraceQuery(BaseModel):
    """Filters, sort and page of ``list_traces``: one definition for the MCP tool, HTTP and the CLI."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["success", "error"] | None = None
    prompt_name: str | None = None
    prompt_version: int | None = Field(default=None, ge=1, le=MAX_INT)
    model: str | None = None
    provider: str | None = None
    tags: list[str] = Field(default_factory=list)
    since: str | None = None
    until: str | None = None
    min_cost: float | None = Field(default=None, ge=0)
    min_duration: float | None = Field(default=None, ge=0)
    min_total_tokens: int | None = Field(default=None, ge=0, le=MAX_INT)
    query: str | None = Field(default=None, max_length=1000)
    session_id: str | None = None
    source: Literal["run", "playground", "ingest", "litellm", "otlp", "replay", "judge"] | None = None
    sort: SortKey = "created_at"
    order: Literal["asc", "desc"] = "desc"
    limit: int = Field(default=20, ge=1, le=200)
    cursor: str | None = None

    @field_validator("query")
    @classmethod
    def _blank_query(cls, v: str | None) -> str | None:
        return v if v and v.strip() else None

    @model_validator(mode="after")
    def _check_times(self) -> TraceQuery:
        _resolve(self.since, "since")  # refused here, with the field named, rather than at the store
        _resolve(self.until, "until")
        return self

    def to_filter(self) -> TraceFilter:
        """The store's filter: times resolved to epoch ms (a relative one against the clock now)."""
        return TraceFilter(
            status=self.status,
            prompt_name=self.prompt_name,
            prompt_version=self.prompt_version,
            model=self.model,
            provider=self.provider,
            tags=tuple(self.tags),
            since_ms=_resolve(self.since, "since"),
            until_ms=_resolve(self.until, "until"),
            min_cost=self.min_cost,
            min_duration=self.min_duration,
            min_total_tokens=self.min_total_tokens,
            query=self.query,
            session_id=self.session_id,
            source=self.source,
            sort=self.sort,
            order=self.order,
            limit=self.limit,
            cursor=self.cursor,
            since_text=self.since,
            until_text=self.until,
        )


class StatsQuery(BaseModel):
    """Grouping and window of ``trace_stats``."""

    model_config = ConfigDict(extra="forbid")

    group_by: Literal["prompt", "version", "model", "status"] = "prompt"
    since: str | None = None
    until: str | None = None
    prompt_name: str | None = None

    @model_validator(mode="after")
    def _check_times(self) -> StatsQuery:
        _resolve(self.since, "since")
        _resolve(self.until, "until")
        return self

    def to_filter(self) -> StatsFilter:
        return StatsFilter(
            group_by=self.group_by,
            since_ms=_resolve(self.since, "since"),
            until_ms=_resolve(self.until, "until"),
            prompt_name=self.prompt_name,
        )


def validate_query(model: type[Q], args: dict[str, Any]) -> Q:
    """``model`` from a client's arguments (None: not given).

    Raises:
        InvalidArgument: naming every bad or unknown argument.
    """
    try:
        return model.model_validate({k: v for k, v in args.items() if v is not None})
    except ValidationError as exc:
        raise from_validation_error(exc, "arguments") from None

"""The narrow async interface every store implements, and the backend-neutral query types.

Services talk only to ``Store``; SQLite details stay in ``store.sqlite``. A PostgreSQL store implements
the same protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..ids import parse_time
from ..ingest_records import IngestResult, TraceRecord
from ..models import MAX_INT, PromptContent, Trace

__all__ = [
    "SORTS",
    "GoldenRecord",
    "PromptRecord",
    "ReplayRecord",
    "SessionRecord",
    "SessionSave",
    "StatsQuery",
    "Store",
    "TokenRecord",
    "TracePage",
    "TraceQuery",
]

SortKey = Literal["created_at", "cost", "total_tokens", "duration"]
SORTS: tuple[str, ...] = ("created_at", "cost", "total_tokens", "duration")


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

    # Parsed forms, filled by the validator.
    since_ms: int | None = Field(default=None, exclude=True)
    until_ms: int | None = Field(default=None, exclude=True)

    @field_validator("query")
    @classmethod
    def _blank_query(cls, v: str | None) -> str | None:
        return v if v and v.strip() else None

    @model_validator(mode="after")
    def _parse_times(self) -> TraceQuery:
        try:
            if self.since is not None:
                self.since_ms = parse_time(self.since, "since")
            if self.until is not None:
                self.until_ms = parse_time(self.until, "until")
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        return self


class StatsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    group_by: Literal["prompt", "version", "model", "status"] = "prompt"
    since: str | None = None
    until: str | None = None
    prompt_name: str | None = None
    since_ms: int | None = Field(default=None, exclude=True)
    until_ms: int | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _parse_times(self) -> StatsQuery:
        if self.since is not None:
            self.since_ms = parse_time(self.since, "since")
        if self.until is not None:
            self.until_ms = parse_time(self.until, "until")
        return self


@dataclass(slots=True)
class TracePage:
    rows: list[dict[str, Any]]
    next_cursor: str | None


@dataclass(slots=True)
class PromptRecord:
    name: str
    description: str
    draft: PromptContent
    draft_etag: str
    draft_revision: int
    versions: list[dict[str, Any]] = field(default_factory=list)
    labels: dict[str, int] = field(default_factory=dict)
    created_at: int = 0
    updated_at: int = 0


@dataclass(slots=True)
class SessionRecord:
    id: str
    trace_id: str
    data: dict[str, Any]
    revision: int
    created_at: int
    updated_at: int
    runs: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class SessionSave:
    """What ``save_session_draft`` did: ``saved`` (with the prompt and the session's new revision), or
    nothing because the session was deleted (``session_gone``) or changed meanwhile (``session_moved``)."""

    status: Literal["saved", "session_gone", "session_moved"]
    prompt: PromptRecord | None = None
    session_revision: int | None = None


@dataclass(slots=True)
class GoldenRecord:
    """A golden case of a prompt: ``data`` holds its expectations, compile context and reference."""

    id: str
    prompt_name: str
    trace_id: str
    data: dict[str, Any]
    created_at: int
    updated_at: int


@dataclass(slots=True)
class ReplayRecord:
    """A replay run: ``data`` is its whole document (progress, summary, cases); ``owner`` the process running it."""

    id: str
    prompt_name: str
    etag: str
    status: str
    owner: str
    data: dict[str, Any]
    created_at: int
    updated_at: int


@dataclass(slots=True)
class TokenRecord:
    id: str
    tenant: str
    name: str
    created_at: int
    revoked_at: int | None


class Store(Protocol):
    """What services need from storage. Every method is scoped to one tenant."""

    async def close(self) -> None: ...
    async def health(self) -> str | None: ...  # None: healthy; else why writes are refused

    # traces
    async def insert_traces(self, tenant: str, records: list[TraceRecord]) -> list[IngestResult]: ...
    async def get_trace(self, tenant: str, trace_id: str) -> Trace | None: ...
    async def list_traces(self, tenant: str, query: TraceQuery) -> TracePage: ...
    async def trace_stats(self, tenant: str, query: StatsQuery) -> list[dict[str, Any]]: ...

    # content-addressed prompt contents
    async def put_content(self, tenant: str, content: PromptContent) -> str: ...
    async def get_content(self, tenant: str, etag: str) -> PromptContent | None: ...

    # prompts
    async def list_prompts(self, tenant: str) -> list[PromptRecord]: ...
    async def get_prompt(self, tenant: str, name: str) -> PromptRecord | None: ...
    async def save_draft(
        self,
        tenant: str,
        name: str,
        content: PromptContent,
        *,
        description: str | None = None,
        expected_revision: int | None = None,
    ) -> PromptRecord: ...
    async def save_drafts(
        self, tenant: str, drafts: list[tuple[str, PromptContent, str | None]]
    ) -> list[PromptRecord]: ...
    async def save_session_draft(
        self,
        tenant: str,
        session_id: str,
        session_revision: int,
        name: str,
        content: PromptContent,
        *,
        expected_revision: int | None,
        update_session: Callable[[dict[str, Any], PromptRecord], dict[str, Any]],
    ) -> SessionSave: ...
    async def publish(
        self,
        tenant: str,
        name: str,
        label: str,
        note: str,
        *,
        expected_etag: str | None = None,
        gate: dict[str, Any] | None = None,
    ) -> PromptRecord: ...
    async def move_label(self, tenant: str, name: str, label: str, version: int, note: str) -> PromptRecord: ...
    async def version_for_etag(self, tenant: str, name: str, etag: str) -> int | None: ...
    async def label_history(self, tenant: str, name: str) -> list[dict[str, Any]]: ...

    # playground sessions
    async def create_session(self, tenant: str, record: SessionRecord) -> None: ...
    async def get_session(self, tenant: str, session_id: str) -> SessionRecord | None: ...
    async def list_sessions(self, tenant: str, limit: int) -> list[SessionRecord]: ...
    async def update_session(self, tenant: str, record: SessionRecord, expected_revision: int) -> bool: ...
    async def delete_session(self, tenant: str, session_id: str) -> bool: ...
    async def expire_sessions(self, idle_before_ms: int) -> int: ...

    # golden cases, gates, replays, the replay call cache
    async def pin_golden(self, tenant: str, records: list[GoldenRecord], max_cases: int) -> list[GoldenRecord]: ...
    async def list_golden(self, tenant: str, prompt_name: str) -> list[GoldenRecord]: ...
    async def update_golden(self, tenant: str, prompt_name: str, case_id: str, data: dict[str, Any]) -> bool: ...
    async def unpin_golden(self, tenant: str, prompt_name: str, case_ids: list[str]) -> list[str]: ...
    async def get_gate(self, tenant: str, prompt_name: str) -> dict[str, Any] | None: ...
    async def set_gate(self, tenant: str, prompt_name: str, policy: dict[str, Any] | None) -> bool: ...
    async def save_replay(self, tenant: str, rec: ReplayRecord) -> None: ...
    async def get_replay(self, tenant: str, replay_id: str) -> ReplayRecord | None: ...
    async def list_replays(
        self, tenant: str, prompt_name: str, *, etag: str | None = None, limit: int = 20
    ) -> list[ReplayRecord]: ...
    async def fail_running_replays(self, is_dead: Callable[[ReplayRecord], bool], error: dict[str, Any]) -> int: ...
    async def cache_get(self, tenant: str, request_hash: bytes) -> str | None: ...
    async def cache_put(self, tenant: str, request_hash: bytes, trace_id: str) -> None: ...
    async def version_gates(self, tenant: str, prompt_name: str) -> dict[int, dict[str, Any]]: ...

    # API tokens (HTTP)
    async def create_token(self, tenant: str, name: str, token_hash: bytes) -> TokenRecord: ...
    async def list_tokens(self, tenant: str | None) -> list[TokenRecord]: ...
    async def revoke_token(self, token_id: str) -> bool: ...
    async def tenant_for_token(self, token_hash: bytes) -> str | None: ...

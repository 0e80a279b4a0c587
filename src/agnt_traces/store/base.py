"""The narrow async interface every store implements, and the records it writes.

Services talk only to ``Store``; SQLite details stay in ``store.sqlite``. A PostgreSQL store implements
the same protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from ..golden_models import GatePolicy, GateRecord, GoldenRecord, ReplayError, ReplayRecord
from ..ingest_records import IngestResult, TraceRecord
from ..models import PromptContent, Trace
from ..playground_session import PlaygroundSession, SessionRun
from ..prompt_records import LabelMove, PromptPick, PromptRecord
from ..records import StatsFilter, StatsRow, TraceFilter, TracePage

__all__ = [
    "GoldenRecord",
    "LabelMove",
    "PromptRecord",
    "ReplayRecord",
    "SessionRecord",
    "SessionSave",
    "Store",
    "TokenRecord",
]


@dataclass(slots=True)
class SessionRecord:
    """A playground session's row: its document, revision and times (ms). Its runs are read apart
    (``session_runs``); ``run_count`` is filled only by ``list_sessions``."""

    id: str
    trace_id: str
    session: PlaygroundSession
    revision: int
    created_at: int
    updated_at: int
    run_count: int | None = None


@dataclass(slots=True)
class SessionSave:
    """What ``save_session_draft`` did: ``saved`` (with the prompt and the session's new revision), or
    nothing because the session was deleted (``session_gone``) or changed meanwhile (``session_moved``)."""

    status: Literal["saved", "session_gone", "session_moved"]
    prompt: PromptRecord | None = None
    session_revision: int | None = None


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
    async def list_traces(self, tenant: str, query: TraceFilter) -> TracePage: ...
    async def trace_stats(self, tenant: str, query: StatsFilter) -> list[StatsRow]: ...

    # content-addressed prompt contents
    async def put_content(self, tenant: str, content: PromptContent) -> str: ...
    async def get_content(self, tenant: str, etag: str) -> PromptContent | None: ...

    # prompts
    async def list_prompts(self, tenant: str) -> list[PromptRecord]: ...
    async def get_prompt(self, tenant: str, name: str) -> PromptRecord | None: ...
    async def pick_prompt(
        self, tenant: str, name: str, *, label: str | None, version: int | None
    ) -> PromptPick | None: ...
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
        update_session: Callable[[PlaygroundSession, PromptRecord], PlaygroundSession],
    ) -> SessionSave: ...
    async def publish(
        self,
        tenant: str,
        name: str,
        label: str,
        note: str,
        *,
        expected_etag: str | None = None,
        gate: GateRecord | None = None,
    ) -> PromptRecord: ...
    async def move_label(self, tenant: str, name: str, label: str, version: int, note: str) -> PromptRecord: ...
    async def version_for_etag(self, tenant: str, name: str, etag: str) -> int | None: ...
    async def label_history(self, tenant: str, name: str) -> list[LabelMove]: ...

    # playground sessions
    async def create_session(self, tenant: str, record: SessionRecord) -> None: ...
    async def get_session(self, tenant: str, session_id: str) -> SessionRecord | None: ...
    async def session_runs(self, tenant: str, session_id: str) -> list[SessionRun]: ...
    async def list_sessions(self, tenant: str, limit: int) -> list[SessionRecord]: ...
    async def update_session(self, tenant: str, record: SessionRecord, expected_revision: int) -> bool: ...
    async def delete_session(self, tenant: str, session_id: str) -> bool: ...
    async def expire_sessions(self, idle_before_ms: int) -> int: ...

    # golden cases, gates, replays, the replay call cache
    async def pin_golden(self, tenant: str, records: list[GoldenRecord], max_cases: int) -> list[GoldenRecord]: ...
    async def list_golden(self, tenant: str, prompt_name: str) -> list[GoldenRecord]: ...
    async def update_golden(self, tenant: str, rec: GoldenRecord) -> bool: ...
    async def unpin_golden(self, tenant: str, prompt_name: str, case_ids: list[str]) -> list[str]: ...
    async def get_gate(self, tenant: str, prompt_name: str) -> GatePolicy | None: ...
    async def set_gate(self, tenant: str, prompt_name: str, policy: GatePolicy | None) -> bool: ...
    async def save_replay(self, tenant: str, rec: ReplayRecord) -> None: ...
    async def get_replay(self, tenant: str, replay_id: str) -> ReplayRecord | None: ...
    async def list_replays(
        self, tenant: str, prompt_name: str, *, etag: str | None = None, limit: int = 20
    ) -> list[ReplayRecord]: ...
    async def fail_running_replays(self, is_dead: Callable[[ReplayRecord], bool], error: ReplayError) -> int: ...
    async def cache_get(self, tenant: str, request_hash: bytes) -> str | None: ...
    async def cache_put(self, tenant: str, request_hash: bytes, trace_id: str) -> None: ...
    async def version_gates(self, tenant: str, prompt_name: str) -> dict[int, GateRecord]: ...

    # API tokens (HTTP)
    async def create_token(self, tenant: str, name: str, token_hash: bytes) -> TokenRecord: ...
    async def list_tokens(self, tenant: str | None) -> list[TokenRecord]: ...
    async def revoke_token(self, token_id: str) -> bool: ...
    async def tenant_for_token(self, token_hash: bytes) -> str | None: ...

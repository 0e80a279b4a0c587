"""What the playground service answers: one typed result per operation.

MCP tools publish their output schemas from these, the REST routes their OpenAPI responses, and every
front end renders them with ``render()``. Keys that today's answers leave out when they have no value are
left out here too (``_OMIT_IF_NONE``), rather than sent as null.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_serializer
from pydantic_core.core_schema import SerializerFunctionWrapHandler

from ..diff import DiffResult
from ..models import Block, ModelConfig, VariableDecl
from ..playground_session import SessionRun
from ..wire import WireModel

__all__ = [
    "CompiledSession",
    "DeletedSession",
    "DiffBody",
    "ModelEstimate",
    "RunDeltas",
    "RunOutcome",
    "SavedSession",
    "SessionDiff",
    "SessionList",
    "SessionListing",
    "SessionVariables",
    "SessionView",
    "TraceDiff",
]


class _Sparse(WireModel):
    """A result some of whose keys are left out (not null) when they have no value."""

    _OMIT_IF_NONE: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _omit_empty(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for key in self._OMIT_IF_NONE:
            if data.get(key) is None:
                data.pop(key, None)
        return data


# -- sessions -------------------------------------------------------------------------------------------


class SessionVariables(WireModel):
    declarations: list[VariableDecl]
    values: dict[str, Any] = Field(description="variable name → value")


class SessionView(WireModel):
    """A session: what it was opened from, its content under edit, models, input messages and runs."""

    id: str
    trace_id: str = Field(description="the trace the session was opened from")
    prompt_name: str | None
    literal: bool = Field(description="opened from a trace whose prompt content is not stored: one block a message")
    base_etag: str | None
    base_version: int | None
    base_revision: int | None = Field(description="the draft revision a save may overwrite")
    etag: str = Field(description="etag of the content under edit")
    blocks: list[Block]
    variables: SessionVariables
    models: list[ModelConfig] = Field(description="run_session calls each; the first is saved")
    tools: list[dict[str, Any]]
    input_messages: list[dict[str, Any]]
    runs: list[SessionRun] = Field(description="oldest first")
    notes: list[str]
    replayable: bool
    replay_issues: list[str]
    revision: int
    created_at: str
    updated_at: str


class SessionListing(WireModel):
    id: str
    trace_id: str
    prompt_name: str | None
    models: list[str] = Field(description="provider/name of each model")
    run_count: int
    updated_at: str


class SessionList(WireModel):
    sessions: list[SessionListing] = Field(description="most recently used first")


class DeletedSession(WireModel):
    id: str
    deleted: bool


class ModelEstimate(WireModel):
    model: str
    input_tokens: int
    input_cost: float | None


class CompiledSession(_Sparse):
    """What the models would receive, and what it would cost."""

    _OMIT_IF_NONE = ("notes",)

    manifest: dict[str, Any] = Field(description="system, tools, model and etag of the compiled call")
    messages: list[dict[str, Any]]
    warnings: list[str]
    estimates: list[ModelEstimate] = Field(description="one per model")
    notes: list[str] | None = None


class RunOutcome(WireModel):
    session_id: str
    runs: list[SessionRun] = Field(description="one per model, in the session's model order")


# -- diffs ----------------------------------------------------------------------------------------------


class DiffRow(WireModel):
    """One file of a diff: which part changed and by how many lines."""

    part: str = Field(description="block, variables, model, tools, messages, output, …")
    id: str | None
    change: Literal["added", "removed", "modified", "moved"]
    added_lines: int = Field(alias="added_lines")
    removed_lines: int = Field(alias="removed_lines")


class DiffTruncation(WireModel):
    omitted_files: list[str]
    omitted_chars: int
    hint: str


class DiffBody(_Sparse):
    """A unified diff (one file per part), its per-file summary, and whether anything changed."""

    _OMIT_IF_NONE = ("truncated",)

    unified: str
    summary: list[DiffRow]
    changed: bool
    truncated: DiffTruncation | None = Field(default=None, description="files left out of `unified` (max_chars)")

    @classmethod
    def of(cls, diff: DiffResult, max_chars: int | None) -> DiffBody:
        return cls.model_validate(diff.to_dict(max_chars))


class RunDeltas(WireModel):
    """The run's figures minus the trace's (null where either is unknown)."""

    input_tokens: int | None
    output_tokens: int | None
    total_tokens: int | None
    cost: float | None
    duration: float | None


class ModelRunDiff(WireModel):
    model: str
    trace_id: str | None
    status: Literal["success", "error"]
    output_changed: bool
    deltas: RunDeltas


class SessionDiff(DiffBody):
    """Session vs the trace it came from: content, compiled messages, and each model's latest output."""

    trace_id: str
    session_id: str
    models: list[ModelRunDiff]


class TraceSide(WireModel):
    etag: str | None
    version: int | None
    content_known: bool


class AgainstSide(WireModel):
    selected: str
    etag: str
    version: int | None


class ContentChange(_Sparse):
    _OMIT_IF_NONE = ("note",)

    changed: bool | None
    note: str | None = None


class ErrorBody(WireModel):
    code: str
    message: str
    details: dict[str, Any]


class RenderedChange(_Sparse):
    _OMIT_IF_NONE = ("warnings", "error")

    changed: bool | None
    warnings: list[str] | None = None
    error: ErrorBody | None = None


class TraceDiff(_Sparse):
    """A trace's prompt content vs the prompt now, and the rendered difference for this very call."""

    _OMIT_IF_NONE = ("truncated",)

    trace_id: str
    prompt: str
    trace: TraceSide
    against: AgainstSide
    unified: str
    summary: list[DiffRow]
    changed: bool
    truncated: DiffTruncation | None = None
    content: ContentChange
    rendered: RenderedChange


class SavedSession(_Sparse):
    """The prompt's draft after the save; ``diff`` (old draft → saved) unless the prompt is new."""

    _OMIT_IF_NONE = ("diff",)

    prompt: str
    draft_revision: int
    etag: str
    created: bool
    diff: DiffBody | None = None

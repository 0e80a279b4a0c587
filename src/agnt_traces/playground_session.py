"""A playground session as it is kept: the typed document under edit, and the record of one run.

The store persists a :class:`PlaygroundSession` as one JSON document (camelCase names, the format every
existing database holds) and reads a session's runs, which are its playground traces, as
:class:`SessionRun` records. The playground service changes a session only through the methods here.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_serializer
from pydantic.alias_generators import to_camel
from pydantic_core.core_schema import SerializerFunctionWrapHandler

from .models import ErrorInfo, ModelConfig, PromptContent, Trace
from .wire import WireModel

__all__ = ["PlaygroundSession", "ProblemKind", "SessionRun"]

#: What a trace may lack for a faithful replay (see ``replayability``): its model, or content.
ProblemKind = str


class PlaygroundSession(BaseModel):
    """The document of a session: the content under edit, its variable values, the models it runs on, what
    it was opened from (trace's prompt, content etag, version and the draft revision a save may overwrite),
    notes for the caller and what the trace lacked for a faithful replay.

    Old documents load as they are (unknown keys such as a stray ``runCount`` are dropped); ``to_json``
    writes today's format, leaving out ``notes`` and ``replayIssues`` when there are none.
    """

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True, extra="ignore")

    prompt_name: str | None = None
    literal: bool = False
    base_etag: str | None = None
    base_version: int | None = None
    base_revision: int | None = None
    content: PromptContent
    values: dict[str, Any] = Field(default_factory=dict)
    models: list[ModelConfig]
    input_messages: list[dict[str, Any]] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    #: ``(kind, text)``: ``kind`` is ``"model"`` or ``"content"``; an edit of that kind settles it.
    replay_issues: list[tuple[ProblemKind, str]] = Field(default_factory=list)

    # -- the stored form --------------------------------------------------------------------------------

    @classmethod
    def from_json(cls, raw: str | bytes) -> PlaygroundSession:
        return cls.model_validate_json(raw)

    def to_json(self) -> str:
        exclude = {name for name in ("notes", "replay_issues") if not getattr(self, name)}
        return self.model_dump_json(by_alias=True, exclude=exclude)

    # -- changes ----------------------------------------------------------------------------------------

    def set_content(self, content: PromptContent) -> None:
        """The caller's own blocks or declarations: the session no longer lacks content."""
        self.content = content
        self.clear_problems("content")

    def set_values(self, values: dict[str, Any]) -> None:
        """Set values (already type-checked); a ``None`` value unsets that variable."""
        merged = {**self.values, **{k: v for k, v in values.items() if v is not None}}
        for name, value in values.items():
            if value is None:
                merged.pop(name, None)
        self.values = merged

    def set_models(self, models: list[ModelConfig]) -> None:
        """The caller's models: the first is the content's; notes about the trace's model no longer apply."""
        self.models = list(models)
        self.content = self.content.model_copy(update={"model": models[0]})
        self.notes = []
        self.clear_problems("model")

    def saved_as(self, prompt_name: str, draft_revision: int) -> PlaygroundSession:
        """The session once saved as that prompt's draft: its content is that prompt's now (not literal)."""
        return self.model_copy(update={"prompt_name": prompt_name, "base_revision": draft_revision, "literal": False})

    def clear_problems(self, kind: ProblemKind) -> None:
        self.replay_issues = [p for p in self.replay_issues if p[0] != kind]

    def content_to_save(self) -> PromptContent:
        """The content a save writes: the blocks under edit with the first model."""
        return self.content.model_copy(update={"model": self.models[0]})


#: Fields a run has only when its call was recorded as a trace.
_TRACE_ONLY = ("inputTokens", "outputTokens", "totalTokens", "cost", "duration", "etag", "cached")


class SessionRun(WireModel):
    """One run of a session on one model: the essentials of its trace. A call that failed before any
    trace was recorded has no ``traceId`` and none of the trace's numbers."""

    run_id: str
    trace_id: str | None
    model: str = Field(description="provider/name")
    status: Literal["success", "error"]
    output: str | None
    error: ErrorInfo | None
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    cost: float | None = None
    duration: float | None = Field(default=None, description="seconds")
    etag: str | None = None
    cached: bool | None = Field(default=None, description="answered from an identical earlier request")
    created_at: str

    @model_serializer(mode="wrap")
    def _without_trace_fields(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if self.trace_id is None:
            for key in _TRACE_ONLY:
                data.pop(key, None)
        return data

    @classmethod
    def of_trace(cls, trace: Trace) -> SessionRun:
        return cls.model_construct(
            run_id=trace.id,
            trace_id=trace.id,
            model=f"{trace.model.provider}/{trace.model.name}",
            status=trace.status,
            output=trace.output,
            error=trace.error,
            input_tokens=trace.input_tokens,
            output_tokens=trace.output_tokens,
            total_tokens=trace.total_tokens,
            cost=trace.cost,
            duration=trace.duration,
            etag=trace.etag,
            cached=bool(trace.metadata.get("cached")),
            created_at=trace.created_at,
        )

    @classmethod
    def failed(cls, run_id: str, model: str, error_type: str, created_at: str) -> SessionRun:
        """A call that raised before its trace was recorded (the message is never the exception's)."""
        return cls.model_construct(
            run_id=run_id,
            trace_id=None,
            model=model,
            status="error",
            output=None,
            error=ErrorInfo(type=error_type, message="internal error"),
            created_at=created_at,
        )

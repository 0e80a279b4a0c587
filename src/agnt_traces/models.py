"""Domain models: prompts, their content, and traces.

JSON field names follow the wire format (camelCase for traces); Python attributes are snake_case.
Every model forbids unknown fields so that a typo is an error, not silently dropped data.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

__all__ = [
    "BLOCK_ID_RE",
    "PROMPT_NAME_RE",
    "Block",
    "ErrorInfo",
    "Manifest",
    "Message",
    "ModelConfig",
    "ModelInfo",
    "PromptContent",
    "Trace",
    "TraceIn",
    "VariableDecl",
    "canonical_json",
    "content_etag",
    "message_text",
]

PROMPT_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")
BLOCK_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
VARIABLE_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

Role = Literal["system", "user", "assistant"]
VariableType = Literal["string", "number", "integer", "boolean", "list", "object"]


def message_text(content: Any) -> str:
    """The text of a chat message's content: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def canonical_json(value: Any) -> str:
    """Canonical JSON: sorted keys, no insignificant white space, UTF-8 kept as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Block(_Strict):
    id: str
    role: Role = "user"
    content: str = ""
    condition: str | None = None

    @field_validator("id")
    @classmethod
    def _check_id(cls, v: str) -> str:
        if not BLOCK_ID_RE.match(v):
            raise ValueError(
                f"block id {v!r} is invalid: use 1-64 characters of a-z, 0-9, '_' or '-', "
                "starting with a letter or digit"
            )
        return v

    @field_validator("condition")
    @classmethod
    def _blank_condition_is_none(cls, v: str | None) -> str | None:
        return v if v is not None and v.strip() else None


class VariableDecl(_Strict):
    name: str
    type: VariableType = "string"
    required: bool = False
    default: Any = None
    description: str = ""

    @field_validator("name")
    @classmethod
    def _check_name(cls, v: str) -> str:
        if not VARIABLE_NAME_RE.match(v):
            raise ValueError(f"variable name {v!r} is invalid: use a Python-style identifier")
        return v


class ModelConfig(_Strict):
    provider: str
    name: str
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("provider", "name")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v

    @property
    def litellm_model(self) -> str:
        return f"{self.provider}/{self.name}"


class PromptContent(_Strict):
    """What compiles: blocks, declared variables, the model and its tools."""

    blocks: list[Block] = Field(default_factory=list)
    variables: list[VariableDecl] = Field(default_factory=list)
    model: ModelConfig = Field(default_factory=lambda: ModelConfig(provider="agnt-local", name="echo"))
    tools: list[dict[str, Any]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_ids(self) -> PromptContent:
        seen: set[str] = set()
        for block in self.blocks:
            if block.id in seen:
                raise ValueError(f"duplicate block id {block.id!r}: block ids must be unique in a prompt")
            seen.add(block.id)
        names: set[str] = set()
        for var in self.variables:
            if var.name in names:
                raise ValueError(f"variable {var.name!r} is declared twice")
            names.add(var.name)
        return self

    def canonical(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @property
    def etag(self) -> str:
        return content_etag(self)

    def block(self, block_id: str) -> Block | None:
        return next((b for b in self.blocks if b.id == block_id), None)


def content_etag(content: PromptContent) -> str:
    """sha256 of the canonical JSON of the content: the same content always has the same etag."""
    return hashlib.sha256(canonical_json(content.canonical()).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------------
# Traces


class _Camel(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


class Message(BaseModel):
    """One chat message; extra keys (tool_call_id, name, tool_calls) are kept as sent."""

    model_config = ConfigDict(extra="allow")
    role: str
    content: Any = None


class Manifest(_Camel):
    system: str = ""
    tools: list[dict[str, Any]] = Field(default_factory=list)
    model: dict[str, Any] = Field(default_factory=dict)
    etag: str | None = None


class ModelInfo(_Camel):
    provider: str = ""
    name: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)


class ErrorInfo(_Camel):
    type: str
    message: str


#: What a trace posted with ``status: "error"`` and no ``error`` object records instead.
UNKNOWN_ERROR_TYPE = "unknown"
NO_ERROR_DETAILS = "the client reported status 'error' without error details"

#: The largest integer SQLite stores; larger ones cannot even be compared in a query.
MAX_INT = 2**63 - 1
NonNegInt = Annotated[int, Field(ge=0, le=10**12)]
Source = Literal["run", "playground", "ingest", "litellm", "otlp"]
#: A stored trace's source: what clients may post, plus the server's own replay and judge calls.
StoredSource = Literal["run", "playground", "ingest", "litellm", "otlp", "replay", "judge"]


class TraceIn(_Camel):
    """A trace as posted by a client (``ingest_trace`` / ``POST /traces``)."""

    id: str | None = None
    created_at: str | None = None
    prompt_name: str | None = None
    prompt_version: Annotated[int, Field(ge=1, le=MAX_INT)] | None = None
    etag: str | None = None
    manifest: Manifest = Field(default_factory=Manifest)
    variables: dict[str, Any] = Field(default_factory=dict)
    messages: list[Message] = Field(default_factory=list)
    output: str | None = None
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    input_tokens: NonNegInt = 0
    output_tokens: NonNegInt = 0
    total_tokens: NonNegInt | None = None
    # Bounded so that sums (stats) stay finite and durations fit in milliseconds.
    cost: Annotated[float, Field(ge=0, le=1e6)] | None = None
    duration: Annotated[float, Field(ge=0, le=1e7)] | None = None  # seconds; None = not reported
    model: ModelInfo = Field(default_factory=ModelInfo)
    status: Literal["success", "error"] = "success"
    error: ErrorInfo | None = None
    tags: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    source: Source = "ingest"
    session_id: str | None = None
    parent_trace_id: str | None = None

    @field_validator("cost", "duration")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v

    @field_validator("id")
    @classmethod
    def _check_id(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^[A-Za-z0-9_-]{1,64}$", v):
            raise ValueError("trace id must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'")
        return v

    @field_validator("prompt_name")
    @classmethod
    def _check_prompt_name(cls, v: str | None) -> str | None:
        if v is not None and not PROMPT_NAME_RE.match(v):
            raise ValueError(f"prompt name {v!r} is invalid: use 1-128 characters of a-z, 0-9, '.', '_' or '-'")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> TraceIn:
        if self.total_tokens is None:
            self.total_tokens = self.input_tokens + self.output_tokens
        if self.status == "error" and self.error is None:
            # Accepted, not refused: the failure is worth keeping; the trace says no details were sent.
            self.error = ErrorInfo(type=UNKNOWN_ERROR_TYPE, message=NO_ERROR_DETAILS)
        if self.status == "success" and self.error is not None:
            raise ValueError("a trace with status 'success' must have error null")
        if len(set(self.tags)) != len(self.tags):
            self.tags = list(dict.fromkeys(self.tags))
        return self


class Trace(_Camel):
    """A stored trace, as every front end returns it."""

    id: str
    created_at: str
    prompt_name: str | None = None
    prompt_version: int | None = None
    etag: str | None = None
    manifest: Manifest = Field(default_factory=Manifest)
    variables: dict[str, Any] = Field(default_factory=dict)
    messages: list[dict[str, Any]] = Field(default_factory=list)
    output: str | None = None
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cost: float | None = None
    duration: float | None = None  # seconds; None = unknown (an ingested trace that did not report it)
    model: ModelInfo = Field(default_factory=ModelInfo)
    status: Literal["success", "error"] = "success"
    error: ErrorInfo | None = None
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    source: StoredSource = "ingest"
    session_id: str | None = None
    parent_trace_id: str | None = None

    @classmethod
    def assemble(cls, **fields: Any) -> Trace:
        """A trace from parts that are already validated, every field given by name: what ``model_construct``
        makes, in a third of its time (a copy of an empty trace, updated; nothing is shared with it).

        Raises:
            TypeError: a field is missing or unknown.
        """
        if fields.keys() != cls.model_fields.keys():
            wrong = sorted(fields.keys() ^ cls.model_fields.keys())
            raise TypeError(f"Trace.assemble takes every field of a trace by name: check {', '.join(wrong)}")
        return _EMPTY_TRACE.model_copy(update=fields)

    def to_json(self) -> dict[str, Any]:
        """The trace as every front end returns it, with ``replayable`` and (when false) ``replayIssues``."""
        from .replayability import replay_issues

        data = self.model_dump(mode="json", by_alias=True)
        issues = replay_issues(self)
        data["replayable"] = not issues
        if issues:
            data["replayIssues"] = issues
        return data


_EMPTY_TRACE = Trace.model_construct()  # only ever copied, with every field replaced

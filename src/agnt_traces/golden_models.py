"""Golden cases, replays and gates as typed records: what the store keeps and what clients are shown.

* Stored records (``GoldenRecord``, ``ReplayRecord``, ``GatePolicy``, ``GateRecord``) read the JSON documents
  the store has always written (camelCase names; the gate policy in snake_case) and write the same documents:
  a database made before these types existed stays readable, and one written now stays readable by it.
* Results (``PinResult``, ``GoldenList``, ``GoldenCaseView``, ``UnpinResult``, ``GateSetting``,
  ``ReplayStarted``, ``ReplayView``, ``ReplayListing``) are what ``GoldenService`` returns and MCP, REST and the
  CLI render: the same classes give the MCP tools their output schemas and the REST routes their OpenAPI
  responses.

A field whose JSON key is left out when it has no value (rather than sent as null) is named in the model's
``omitted_when_none``: today's documents and answers omit those keys, and so do these models.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import AliasChoices, AliasGenerator, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer
from pydantic.alias_generators import to_camel

from .models import ModelConfig
from .wire import WireModel

__all__ = [
    "CHECK_TYPES",
    "Baseline",
    "Check",
    "CheckType",
    "CompileContext",
    "Deltas",
    "DiffPreview",
    "GatePolicy",
    "GateRecord",
    "GateSetting",
    "GateVerdict",
    "GoldenCaseDetail",
    "GoldenCaseView",
    "GoldenList",
    "GoldenRecord",
    "Judge",
    "ModelRef",
    "Outcome",
    "PinResult",
    "Reference",
    "ReplayBudget",
    "ReplayCaseResult",
    "ReplayCaseView",
    "ReplayError",
    "ReplayListItem",
    "ReplayListing",
    "ReplayProgress",
    "ReplayRecord",
    "ReplayStarted",
    "ReplaySummary",
    "ReplayView",
    "StoredDiff",
    "TrialResult",
    "UnpinResult",
]

CheckType = Literal[
    "contains", "not_contains", "regex", "equals", "json", "json_schema", "max_tokens", "max_cost", "max_duration"
]
CHECK_TYPES: tuple[str, ...] = CheckType.__args__  # type: ignore[attr-defined]


class _Record(WireModel):
    """A typed part of a stored document or of a result. Documents written by earlier releases may carry keys
    these types do not name: they are ignored, never a reason to refuse a stored row."""

    model_config = ConfigDict(extra="ignore")

    omitted_when_none: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _leave_out_absent(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if self.omitted_when_none and isinstance(data, dict):
            for name in self.omitted_when_none:
                field = type(self).model_fields[name]
                for key in (field.alias, name):
                    if key in data and data[key] is None:
                        del data[key]
        return data


# -- golden cases ------------------------------------------------------------------------------------------


class Check(_Record):
    """An expectation of a case: ``{type, value}`` (``json`` has value true)."""

    type: CheckType
    value: str | bool | int | float | dict[str, Any] = Field(
        description="the text, pattern, JSON Schema, or limit the check compares with"
    )


class ModelRef(_Record):
    """A model as a case's compile context names it."""

    provider: str
    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class Judge(_Record):
    """A model that grades each replayed answer PASS/FAIL by a rubric."""

    rubric: str
    model: ModelConfig


class CompileContext(_Record):
    """A golden trace's exact compile context: what a replay compiles the candidate content with."""

    variables: dict[str, Any] = Field(default_factory=dict)
    input_messages: list[dict[str, Any]] = Field(default_factory=list)
    model: ModelRef
    etag: str | None = None
    version: int | None = None
    content_known: bool = False


class Reference(_Record):
    """A golden trace's answer and figures: what replays are compared with."""

    output: str | None = None
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    status: str = "success"
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    cost: float | None = None
    duration: float | None = None
    model: str = ""


class GoldenRecord(_Record):
    """A golden case of a prompt: expectations (``required``, checks, judge), compile context and reference.
    The store keeps the last five as one JSON document."""

    document_fields: ClassVar[frozenset[str]] = frozenset({"required", "checks", "judge", "context", "reference"})

    id: str
    prompt_name: str
    trace_id: str
    required: bool = False
    checks: list[Check] = Field(default_factory=list)
    judge: Judge | None = None
    context: CompileContext
    reference: Reference
    created_at: int
    updated_at: int

    def document(self) -> str:
        """The stored JSON document (expectations, context, reference)."""
        return self.model_dump_json(include=set(self.document_fields))

    @classmethod
    def from_row(
        cls, *, id: str, prompt_name: str, trace_id: str, document: str, created_at: int, updated_at: int
    ) -> GoldenRecord:
        """A stored row; ``document`` as ``document()`` wrote it, or as any earlier release did."""
        return cls.model_validate(
            {
                **json.loads(document),
                "id": id,
                "promptName": prompt_name,
                "traceId": trace_id,
                "createdAt": created_at,
                "updatedAt": updated_at,
            }
        )


class GoldenCaseView(WireModel):
    """A golden case's expectations, as pin_golden and update_golden answer."""

    id: str
    trace_id: str
    required: bool
    checks: list[Check]
    judge: Judge | None


class GoldenCaseDetail(GoldenCaseView):
    """A golden case as list_golden shows it: its expectations, model and reference preview."""

    version: int | None = Field(description="the prompt version the golden trace ran on")
    model: str = Field(description="provider/name")
    reference_preview: str = Field(description="the first 120 characters of the reference output")
    created_at: str
    updated_at: str


# -- gates -------------------------------------------------------------------------------------------------


class GatePolicy(_Record):
    """What a replay must show before the draft may be published. Its JSON names are snake_case (camelCase
    is accepted on input)."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=AliasGenerator(
            validation_alias=lambda name: AliasChoices(name, to_camel(name)),
            serialization_alias=lambda name: name,
        ),
    )

    required_pass: bool = True
    no_regressions: bool = True
    min_pass_rate: float | None = Field(default=None, ge=0, le=1)
    max_cost_increase: float | None = Field(default=None, ge=-1, le=1000, description="a fraction: 0.1 = +10%")
    max_p95_increase: float | None = Field(default=None, ge=-1, le=1000, description="a fraction: 0.1 = +10%")


class GateSetting(WireModel):
    """A prompt's gate policy (null: no gate)."""

    prompt: str
    gate: GatePolicy | None


class Baseline(_Record):
    """The references' figures a replay is compared with."""

    cost_per_call: float | None = None
    p95_duration: float | None = None


class ReplaySummary(_Record):
    """A finished replay in figures: pass rate, regressions, spend, and cost and p95 against the references."""

    omitted_when_none = frozenset({"stopped"})

    cases: int = 0
    passed: int = 0
    failed: int = 0
    regressions: int = 0
    improvements: int = 0
    flaky: int = 0
    required_failed: int = 0
    pass_rate: float | None = None
    cached: int = 0
    model_calls: int = 0
    cost: float = 0.0
    tokens: int = 0
    cost_delta: float | None = Field(default=None, description="cost per call against the references, a fraction")
    p95_duration: float | None = None
    p95_delta: float | None = Field(default=None, description="p95 latency against the references, a fraction")
    baseline: Baseline = Field(default_factory=Baseline)
    stopped: str | None = Field(default=None, description="why the replay stopped early ('budget'); absent if not")


class GateRecord(_Record):
    """What let a version through its gate: a passing replay (``replayId``, ``summary``) or an override."""

    omitted_when_none = frozenset({"replay_id", "summary", "override", "draft_etag", "at"})

    replay_id: str | None = None
    summary: ReplaySummary | None = None
    override: str | None = Field(default=None, description="why the gate was overridden")
    draft_etag: str | None = None
    at: str | None = Field(default=None, description="when the gate was overridden (RFC 3339)")


class GateVerdict(_Record):
    """The gate's verdict on a replay (the default policy when the prompt has no gate)."""

    policy: GatePolicy
    gated: bool
    passed: bool
    failures: list[str]


# -- replays -----------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Outcome:
    """What a check, a judge or the call itself found for one answer."""

    type: str
    passed: bool
    detail: str


class ReplayProgress(_Record):
    done: int
    total: int


class ReplayBudget(_Record):
    """A replay's spend limit and what it spent."""

    limit_usd: float | None = None
    limit_tokens: int | None = None
    spent_usd: float = 0.0
    spent_tokens: int = 0


class ReplayError(_Record):
    """Why a replay ended in ``error``."""

    omitted_when_none = frozenset({"details"})

    code: str
    message: str = ""
    details: dict[str, Any] | None = None


class StoredDiff(_Record):
    """A case's output diff against its reference, as stored (bounded)."""

    omitted_when_none = frozenset({"truncated"})

    changed: bool = False
    unified: str = ""
    summary: list[dict[str, Any]] = Field(default_factory=list)
    truncated: dict[str, Any] | None = None


class DiffPreview(WireModel):
    """A case's output diff against its reference, cut for a report."""

    changed: bool | None
    unified: str


class Deltas(_Record):
    """Replayed answer minus reference (null where either is unknown)."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    cost: float | None = None
    duration: float | None = None


class TrialResult(_Record):
    trace_id: str | None
    passed: bool
    cached: bool


class ReplayCaseResult(_Record):
    """One case on one model in a replay (every trial; the first failing one shown)."""

    omitted_when_none = frozenset({"trials"})

    case_id: str
    golden_trace_id: str
    trace_id: str | None
    model: str
    status: Literal["passed", "failed"]
    required: bool
    baseline_passed: bool
    regression: bool
    improvement: bool
    flaky: bool
    cached: bool
    checks: list[Outcome]
    diff: StoredDiff
    deltas: Deltas
    trials: list[TrialResult] | None = Field(default=None, description="each trial, when trials > 1")


class ReplayCaseView(ReplayCaseResult):
    """One case on one model in a replay report, its diff cut to the report's size."""

    diff: DiffPreview  # type: ignore[assignment]


class ReplayRecord(_Record):
    """A replay run: what it replays and, once finished, its report. ``owner`` is the process running it.
    The store keeps all but the row's own columns (id, prompt, owner, times) as one JSON document."""

    document_fields: ClassVar[tuple[str, ...]] = (
        "against",
        "version",
        "etag",
        "models",
        "trials",
        "fresh",
        "case_ids",
        "all_cases",
        "budget",
        "progress",
        "status",
        "summary",
        "cases",
        "gate",
        "error",
        "finished_at",
    )
    omitted_when_none = frozenset({"summary", "cases", "gate", "error", "finished_at"})

    id: str
    prompt_name: str
    etag: str
    status: str
    owner: str
    created_at: int
    updated_at: int
    against: str | None = None
    version: int | None = None
    models: list[str] | None = None
    trials: int | None = None
    fresh: bool = False
    case_ids: list[str] = Field(default_factory=list)
    all_cases: bool = True
    budget: ReplayBudget | None = None
    progress: ReplayProgress | None = None
    summary: ReplaySummary | None = None
    cases: list[ReplayCaseResult] | None = None
    gate: GateVerdict | None = None
    error: ReplayError | None = None
    finished_at: str | None = None

    def document(self) -> str:
        """The stored JSON document."""
        return self.model_dump_json(include=set(self.document_fields))

    @classmethod
    def from_row(
        cls,
        *,
        id: str,
        prompt_name: str,
        etag: str,
        status: str,
        owner: str,
        document: str,
        created_at: int,
        updated_at: int,
    ) -> ReplayRecord:
        """A stored row; ``document`` as ``document()`` wrote it, or as any earlier release did (the row's
        own columns win over the document's copies)."""
        return cls.model_validate(
            {
                **json.loads(document),
                "id": id,
                "promptName": prompt_name,
                "etag": etag,
                "status": status,
                "owner": owner,
                "createdAt": created_at,
                "updatedAt": updated_at,
            }
        )


# -- results -----------------------------------------------------------------------------------------------


class PinResult(WireModel):
    """The pinned cases (a trace pinned before keeps its case id and gets the new expectations)."""

    cases: list[GoldenCaseView]


class GoldenList(WireModel):
    """A prompt's golden cases and its gate (null: none)."""

    prompt: str
    cases: list[GoldenCaseDetail]
    gate: GatePolicy | None


class UnpinResult(WireModel):
    removed: int = Field(description="how many cases were removed")
    not_found: list[str] = Field(description="case ids that were not cases of the prompt (at most 20)")


class ReplayStarted(WireModel):
    """A replay running in the background: poll get_replay with its id."""

    id: str
    status: Literal["running"]
    etag: str = Field(description="the etag of the content replayed")
    progress: ReplayProgress


class ReplayView(_Record):
    """A replay's state and report: status, summary and gate verdict (null while running), cases worst first."""

    omitted_when_none = frozenset({"error"})

    id: str
    prompt: str
    status: Literal["running", "passed", "failed", "error"]
    against: str | None
    etag: str
    version: int | None
    models: list[str] | None
    trials: int | None
    progress: ReplayProgress | None
    summary: ReplaySummary | None
    gate: GateVerdict | None
    budget: ReplayBudget | None
    cases: list[ReplayCaseView]
    cases_omitted: int = Field(description="cases not shown (beyond max_cases)")
    created_at: str
    finished_at: str | None
    error: ReplayError | None = Field(default=None, description="why the replay ended in error; absent otherwise")


class ReplayListItem(WireModel):
    id: str
    status: str
    against: str | None
    etag: str
    summary: ReplaySummary | None
    created_at: str


class ReplayListing(WireModel):
    """A prompt's replays, newest first."""

    replays: list[ReplayListItem]

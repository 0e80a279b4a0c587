"""The REST API under ``/api/v1``: one table of operations that builds both the routes and the OpenAPI document.

Every operation is tenant-scoped (``/tenants/{tenant}/…``): the bearer token's tenant must be the path's
tenant, else the answer is the same 404 as for a path that does not exist. Handlers call the same services
as the MCP tools, so both front ends return the same JSON.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..app import App
from ..errors import AgntError, InternalError, InvalidArgument, from_validation_error
from ..golden_models import (
    GatePolicy,
    GateSetting,
    GoldenCaseView,
    GoldenList,
    PinResult,
    ReplayListing,
    ReplayStarted,
    ReplayView,
    UnpinResult,
)
from ..limits import DIFF_MAX_CHARS
from ..logs import log_failure
from ..models import ModelConfig, PromptContent, TraceIn
from ..services.ingest_results import BatchIngested, BatchOutcomes, IngestedTrace, batch_answer
from ..services.playground_results import (
    CompiledSession,
    DeletedSession,
    RunOutcome,
    SavedSession,
    SessionDiff,
    SessionList,
    SessionView,
    TraceDiff,
)
from ..services.prompt_results import (
    PromptDetail,
    PromptList,
    PromptVersions,
    PublishResult,
    RunPromptResult,
    UpsertResult,
)
from ..services.queries import StatsQuery, TraceQuery, validate_query
from ..services.trace_results import StatsResult, TraceList, TraceView
from ..services.traces import TRACE_FIELDS
from .auth import TokenAuth
from .errors import NO_STORE, error_response, json_body, json_object, not_found

__all__ = ["OPERATIONS", "Operation", "QueryParam", "Runtime", "build_api_routes"]

logger = logging.getLogger("agnt_traces.http")
M = TypeVar("M", bound=BaseModel)

# -- request bodies (camelCase; snake_case accepted too) -------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, validate_by_name=True, validate_by_alias=True)


class TraceBatchBody(_Body):
    """A batch of traces, answered per trace: every valid trace is stored, each invalid or conflicting one
    is refused on its own. All stored: 201/200 ``{traces: [{id, created}], created}``. Any refused: 207
    ``{results: [{index, id, created} | {index, error: {code, message, details}}], created, refused}``."""

    traces: list[dict[str, Any]] = Field(description="trace objects as in the single-trace body", max_length=1000)


class EditBlockBody(_Body):
    op: Literal["update", "insert", "delete", "move"] = "update"
    content: str | None = None
    condition: str | None = Field(default=None, description="Jinja2 expression; '' clears it")
    role: Literal["system", "user", "assistant"] | None = None
    after: str | None = Field(default=None, description="anchor block id for insert/move; omitted = at the start")


class VariablesBody(_Body):
    values: dict[str, Any] = Field(default_factory=dict, description="variable name → value; null unsets")
    declarations: list[dict[str, Any]] | None = Field(
        default=None, description="declare or redeclare variables: {name, type, required, default, description}"
    )


class ModelsBody(_Body):
    models: list[ModelConfig] = Field(min_length=1, max_length=8)


class SaveBody(_Body):
    force: bool = False
    replace_draft: bool = False
    prompt_name: str | None = Field(default=None, description="for sessions opened from literal traces")


class RunSessionBody(_Body):
    fresh: bool = Field(default=False, description="call the models even for a request answered before")


class PutPromptBody(_Body):
    content: PromptContent
    description: str | None = None


class PromptContentBody(PromptContent):
    """The content itself as the body, with an optional description."""

    description: str | None = None


class PublishBody(_Body):
    version: int | None = Field(default=None, ge=1, description="move the label to this version instead")
    label: str = "production"
    note: str = ""
    expected_etag: str | None = Field(
        default=None,
        description="the draftEtag you read: refuse (412, code conflict) if the draft changed; same as If-Match",
    )
    run_gate: bool = Field(default=False, description="on a gated prompt: replay the draft now and wait for it")
    override_reason: str | None = Field(
        default=None, description="publish a gated prompt without a passing replay; recorded on the version"
    )


class PinGoldenBody(_Body):
    trace_ids: list[str] | None = Field(default=None, max_length=500, description="traces of this prompt to pin")
    filter: dict[str, Any] | None = Field(
        default=None, description="instead of traceIds: list_traces arguments (snake_case), limit up to 500"
    )
    required: bool = False
    checks: list[dict[str, Any]] | None = Field(default=None, description="[{type, value}]")
    judge: dict[str, Any] | None = Field(default=None, description="{rubric, model}")


class UpdateGoldenBody(_Body):
    required: bool | None = None
    checks: list[dict[str, Any]] | None = None
    judge: dict[str, Any] | None = Field(default=None, description="{rubric, model}; {} removes it")


class RunReplayBody(_Body):
    against: str | int = Field(default="draft", description="draft, a version number, a label or session:<id>")
    models: list[dict[str, Any]] | None = Field(default=None, max_length=8)
    case_ids: list[str] | None = None
    trials: int = 1
    budget_usd: float | None = None
    budget_tokens: int | None = None
    fresh: bool = False


class _GatePolicyDoc(_Body):
    """The gate policy (for the OpenAPI document; the service validates it)."""

    required_pass: bool = True
    no_regressions: bool = True
    min_pass_rate: float | None = Field(default=None, ge=0, le=1)
    max_cost_increase: float | None = Field(default=None, description="a fraction: 0.1 = +10%")
    max_p95_increase: float | None = Field(default=None, description="a fraction: 0.1 = +10%")


class RunPromptBody(_Body):
    variables: dict[str, Any] = Field(default_factory=dict)
    messages: list[dict[str, Any]] = Field(default_factory=list, description="input messages, e.g. the user turn")
    label: str | None = Field(default=None, description="default 'production'; 'draft' allowed")
    version: int | None = Field(default=None, ge=1)
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)


def parse_body(model: type[M], data: dict[str, Any], what: str = "body") -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_validation_error(exc, what) from None


# -- the call context --------------------------------------------------------------------------------------


class Runtime:
    """What the routes share: the token lookup, and the App once the server's lifespan has opened it."""

    def __init__(self, auth: TokenAuth) -> None:
        self.auth = auth
        self._app: App | None = None

    @property
    def app(self) -> App:
        if self._app is None:
            raise InternalError("the server is not ready yet; retry in a moment")
        return self._app

    @app.setter
    def app(self, value: App | None) -> None:
        self._app = value


@dataclass(slots=True)
class Call:
    request: Request
    app: App
    tenant: str
    rt: Runtime
    headers: dict[str, str] = field(default_factory=dict)  # extra response headers (e.g. ETag)

    def path(self, name: str) -> str:
        value: str = self.request.path_params[name]
        return value

    async def body(self, *, required: bool = True) -> dict[str, Any]:
        return await json_body(self.request, required=required)

    async def raw_body(self) -> bytes:
        """The request body as sent (within the body limit)."""
        return await self.request.body()

    def query(self, allowed: Iterable[str], *, lists: Iterable[str] = ()) -> dict[str, Any]:
        """Query parameters, each at most once (``lists``: repeatable and comma-separated); empty values are
        ignored; unknown names are an error."""
        allowed = set(allowed)
        lists = set(lists)
        out: dict[str, Any] = {}
        params = self.request.query_params
        for key in dict.fromkeys(params.keys()):
            if key not in allowed:
                raise InvalidArgument(
                    f"unknown query parameter {key!r}: use {', '.join(sorted(allowed)) or 'none'}",
                    {"field": key},
                )
            values = [v for v in params.getlist(key) if v != ""]
            if not values:
                continue
            if key in lists:
                out[key] = values
            elif len(values) > 1:
                raise InvalidArgument(f"query parameter {key!r} is given {len(values)} times: give it once")
            else:
                out[key] = values[0]
        return out


def _int(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidArgument(f"{name} must be an integer, got {value!r}", {"field": name}) from None


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


_ENTITY_TAG = re.compile(r'^(?:W/)?"([\x21\x23-\x7e]*)"$')


def entity_tag(etag: str) -> str:
    """A prompt draft etag as an HTTP entity tag (strong, quoted)."""
    return f'"{etag}"'


def if_match(request: Request) -> str | None:
    """The draft etag an ``If-Match`` header asks for: None without the header, ``"*"`` for any.

    One entity tag, quoted as HTTP defines it (``If-Match: "<draftEtag>"``). ``W/"…"`` is accepted and
    compared by its value: our etags name the draft's content, not a byte representation, so a tag weakened
    by a proxy (e.g. one that compresses responses) still names exactly one draft.

    Raises:
        InvalidArgument: a malformed header, or more than one entity tag.
    """
    values = request.headers.getlist("if-match")
    if not values:
        return None
    value = ",".join(values).strip()
    if value == "*":
        return "*"
    match = _ENTITY_TAG.match(value)
    if match is None:
        raise InvalidArgument(
            "If-Match must be one quoted entity tag, as the ETag header of GET …/prompts/{name} gives it: "
            'If-Match: "<draftEtag>" (or * for any draft)',
            {"field": "If-Match"},
        )
    return match.group(1)


# -- handlers --------------------------------------------------------------------------------------------

Result = dict[str, Any] | tuple[int, dict[str, Any]]
Handler = Callable[[Call], Awaitable[Result]]

LIST_QUERY = tuple(TraceQuery.model_fields)
STATS_QUERY = tuple(StatsQuery.model_fields)


async def list_traces(c: Call) -> Result:
    args = c.query((*LIST_QUERY, "tag"), lists=("tags", "tag"))
    tags = [*(args.pop("tag", None) or []), *_split(args.pop("tags", None))]
    if tags:
        args["tags"] = tags
    return (await c.app.traces.list(c.tenant, validate_query(TraceQuery, args))).render()


async def ingest_traces(c: Call) -> Result:
    raw = await c.raw_body()
    if b'"traces"' not in raw and raw.strip():  # one trace: validated once, straight from the body's JSON
        one = await c.app.traces.ingest_json(c.tenant, raw)
        return (201 if one.created else 200), one.render()
    each = await c.app.traces.ingest_each_json(c.tenant, raw)  # a batch of valid traces: validated once
    if each is None:  # anything else: parsed and checked, then answered per trace
        body = json_object(raw)
        if set(body) != {"traces"}:
            one = await c.app.traces.ingest(c.tenant, body)
            return (201 if one.created else 200), one.render()
        each = await c.app.traces.ingest_each(c.tenant, parse_body(TraceBatchBody, body).traces)
    answer = batch_answer(each)
    if isinstance(answer, BatchIngested):  # every trace stored: the all-or-nothing era's answer, unchanged
        return (201 if answer.created else 200), answer.render()
    return 207, answer.render()


async def get_trace(c: Call) -> Result:
    args = c.query(("fields", "max_chars"), lists=("fields",))
    fields = _split(args.get("fields")) or None
    return await c.app.traces.get_json(c.tenant, c.path("trace_id"), fields, _int(args.get("max_chars"), "max_chars"))


async def diff_trace(c: Call) -> Result:
    args = c.query(("against", "max_chars"))
    max_chars = _int(args.get("max_chars"), "max_chars")
    result = await c.app.playground.diff_trace(
        c.tenant, c.path("trace_id"), args.get("against"), DIFF_MAX_CHARS if max_chars is None else max_chars
    )
    return result.render()


async def trace_stats(c: Call) -> Result:
    args = c.query(STATS_QUERY)
    return (await c.app.traces.stats(c.tenant, validate_query(StatsQuery, args))).render()


async def open_playground(c: Call) -> Result:
    await c.body(required=False)  # no fields; a body, if any, must still be a JSON object
    return 201, (await c.app.playground.open(c.tenant, c.path("trace_id"))).render()


async def list_sessions(c: Call) -> Result:
    limit = _int(c.query(("limit",)).get("limit"), "limit")
    if limit is not None and not 1 <= limit <= 200:
        raise InvalidArgument("limit must be between 1 and 200", {"field": "limit"})
    return (await c.app.playground.list(c.tenant, limit or 50)).render()


async def get_session(c: Call) -> Result:
    return (await c.app.playground.get(c.tenant, c.path("session_id"))).render()


async def delete_session(c: Call) -> Result:
    return (await c.app.playground.delete(c.tenant, c.path("session_id"))).render()


async def edit_block(c: Call) -> Result:
    b = parse_body(EditBlockBody, await c.body())
    view = await c.app.playground.edit_block(
        c.tenant,
        c.path("session_id"),
        c.path("block_id"),
        b.op,
        content=b.content,
        condition=b.condition,
        role=b.role,
        after=b.after,
    )
    return view.render()


async def update_variables(c: Call) -> Result:
    b = parse_body(VariablesBody, await c.body())
    view = await c.app.playground.update_variables(
        c.tenant, c.path("session_id"), b.values, declarations=b.declarations
    )
    return view.render()


async def update_models(c: Call) -> Result:
    b = parse_body(ModelsBody, await c.body())
    models = [m.model_dump(mode="json") for m in b.models]
    return (await c.app.playground.update_models(c.tenant, c.path("session_id"), models)).render()


async def compile_session(c: Call) -> Result:
    await c.body(required=False)
    return (await c.app.playground.compile(c.tenant, c.path("session_id"))).render()


async def run_session(c: Call) -> Result:
    b = parse_body(RunSessionBody, await c.body(required=False))
    return (await c.app.playground.run(c.tenant, c.path("session_id"), fresh=b.fresh)).render()


async def diff_session(c: Call) -> Result:
    max_chars = _int(c.query(("max_chars",)).get("max_chars"), "max_chars")
    diff = await c.app.playground.diff(
        c.tenant, c.path("session_id"), DIFF_MAX_CHARS if max_chars is None else max_chars
    )
    return diff.render()


async def save_session(c: Call) -> Result:
    b = parse_body(SaveBody, await c.body(required=False))
    saved = await c.app.playground.save(
        c.tenant, c.path("session_id"), force=b.force, prompt_name=b.prompt_name, replace_draft=b.replace_draft
    )
    return saved.render()


async def list_prompts(c: Call) -> Result:
    c.query(())
    return (await c.app.prompts.list(c.tenant)).render()


async def get_prompt(c: Call) -> Result:
    args = c.query(("version", "label"))
    result = await c.app.prompts.get(
        c.tenant, c.path("name"), version=_int(args.get("version"), "version"), label=args.get("label")
    )
    c.headers["etag"] = entity_tag(result.draft_etag)  # what publish's If-Match compares against
    return result.render()


async def put_prompt(c: Call) -> Result:
    body = await c.body()
    if "content" in body:
        wrapped = parse_body(PutPromptBody, body)
        content, description = wrapped.content, wrapped.description
    else:
        description = body.pop("description", None)
        if description is not None and not isinstance(description, str):
            raise InvalidArgument("description must be a string", {"field": "description"})
        content = parse_body(PromptContent, body, "content")
    result = await c.app.prompts.upsert(c.tenant, c.path("name"), content, description)
    c.headers["etag"] = entity_tag(result.draft_etag)
    return result.render()


async def prompt_versions(c: Call) -> Result:
    result = await c.app.prompts.versions(c.tenant, c.path("name"))
    c.headers["etag"] = entity_tag(result.draft_etag)
    return result.render()


async def publish_prompt(c: Call) -> Result:
    b = parse_body(PublishBody, await c.body(required=False))
    expected = if_match(c.request)
    if expected is not None and b.expected_etag is not None and expected != b.expected_etag:
        raise InvalidArgument(
            "If-Match and expectedEtag name different drafts: send one of them", {"field": "expectedEtag"}
        )
    published = await c.app.golden.publish(
        c.tenant,
        c.path("name"),
        version=b.version,
        label=b.label,
        note=b.note,
        expected_etag=expected if expected is not None else b.expected_etag,
        run_gate=b.run_gate,
        override_reason=b.override_reason,
    )
    return published.render()


async def list_golden(c: Call) -> Result:
    c.query(())
    return (await c.app.golden.list_cases(c.tenant, c.path("name"))).render()


async def pin_golden(c: Call) -> Result:
    b = parse_body(PinGoldenBody, await c.body())
    pinned = await c.app.golden.pin(
        c.tenant,
        c.path("name"),
        trace_ids=b.trace_ids,
        filter=b.filter,
        required=b.required,
        checks=b.checks,
        judge=b.judge,
    )
    return 201, pinned.render()


async def update_golden(c: Call) -> Result:
    b = parse_body(UpdateGoldenBody, await c.body())
    updated = await c.app.golden.update(
        c.tenant, c.path("name"), c.path("case_id"), required=b.required, checks=b.checks, judge=b.judge
    )
    return updated.render()


async def unpin_golden_case(c: Call) -> Result:
    return (await c.app.golden.unpin(c.tenant, c.path("name"), [c.path("case_id")])).render()


async def unpin_golden(c: Call) -> Result:
    case_ids = _split(c.query(("case_ids",), lists=("case_ids",)).get("case_ids"))
    return (await c.app.golden.unpin(c.tenant, c.path("name"), case_ids)).render()


async def run_replay(c: Call) -> Result:
    b = parse_body(RunReplayBody, await c.body(required=False))
    started = await c.app.golden.run(
        c.tenant,
        c.path("name"),
        against=b.against,
        models=b.models,
        case_ids=b.case_ids,
        trials=b.trials,
        budget_usd=b.budget_usd,
        budget_tokens=b.budget_tokens,
        fresh=b.fresh,
    )
    return 202, started.render()


async def list_replays(c: Call) -> Result:
    limit = _int(c.query(("limit",)).get("limit"), "limit")
    return (await c.app.golden.list_replays(c.tenant, c.path("name"), 20 if limit is None else limit)).render()


async def get_replay(c: Call) -> Result:
    args = c.query(("wait_seconds", "max_cases"))
    wait = args.get("wait_seconds")
    try:
        wait_seconds = float(wait) if wait is not None else 0.0
    except ValueError:
        raise InvalidArgument("wait_seconds must be a number from 0 to 50", {"field": "wait_seconds"}) from None
    max_cases = _int(args.get("max_cases"), "max_cases")
    view = await c.app.golden.get(
        c.tenant, c.path("replay_id"), wait_seconds=wait_seconds, max_cases=25 if max_cases is None else max_cases
    )
    return view.render()


async def get_gate(c: Call) -> Result:
    c.query(())
    return (await c.app.golden.get_gate(c.tenant, c.path("name"))).render()


async def put_gate(c: Call) -> Result:
    policy = parse_body(GatePolicy, await c.body(required=False), "policy")
    return (await c.app.golden.set_gate(c.tenant, c.path("name"), policy)).render()


async def delete_gate(c: Call) -> Result:
    return (await c.app.golden.set_gate(c.tenant, c.path("name"), None)).render()


async def run_prompt(c: Call) -> Result:
    b = parse_body(RunPromptBody, await c.body(required=False))
    ran = await c.app.prompts.run(
        c.tenant,
        c.path("name"),
        variables=b.variables,
        messages=b.messages,
        label=b.label,
        version=b.version,
        tags=b.tags,
        metadata=b.metadata,
    )
    return ran.render()


# -- the table ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueryParam:
    name: str
    schema: dict[str, Any]
    description: str = ""
    repeatable: bool = False


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str  # under /api/v1, Starlette syntax
    handler: Handler
    summary: str
    body: Any = None  # a pydantic model, or a list of them (oneOf)
    body_required: bool = False
    query: tuple[QueryParam, ...] = ()
    status: tuple[int, ...] = (200,)
    tag: str = "traces"
    errors: tuple[int, ...] = field(default=(400, 401, 404))
    response: Any = None  # a pydantic model describing the success body, if one fits

    @property
    def operation_id(self) -> str:
        return self.handler.__name__


def _query_from_model(model: type[BaseModel], names: Iterable[str]) -> tuple[QueryParam, ...]:
    props = model.model_json_schema()["properties"]
    out = []
    for name in names:
        schema = dict(props[name])
        schema.pop("title", None)
        repeatable = name == "tags"
        desc = "comma-separated; every tag must match" if repeatable else ""
        out.append(QueryParam(name, schema, desc, repeatable))
    return tuple(out)


_SESSION = "/tenants/{tenant}/playground/sessions/{session_id}"
_PROMPT = "/tenants/{tenant}/prompts/{name}"

_DIFF_MAX_CHARS = QueryParam(
    "max_chars",
    {"type": "integer", "minimum": 1, "maximum": 10_000_000, "default": DIFF_MAX_CHARS},
    "bound on the characters of `unified`: whole files while they fit; `truncated` names the rest",
)


OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "GET",
        "/tenants/{tenant}/traces",
        list_traces,
        "Filtered, sorted, cursor-paginated compact trace rows",
        response=TraceList,
        query=(
            *_query_from_model(TraceQuery, LIST_QUERY),
            QueryParam("tag", {"type": "string"}, "repeatable; every tag must match", True),
        ),
    ),
    Operation(
        "POST",
        "/tenants/{tenant}/traces",
        ingest_traces,
        'Record a trace (or a batch: {"traces": [...]}, answered per trace: 207 when any was refused); '
        "with an id it is idempotent",
        body=[TraceIn, TraceBatchBody],
        body_required=True,
        response=[IngestedTrace, BatchIngested, BatchOutcomes],
        status=(201, 200, 207),
        errors=(400, 401, 404, 409, 413),
    ),
    Operation(
        "GET",
        "/tenants/{tenant}/traces/{trace_id}",
        get_trace,
        "One trace; fields projection and max_chars truncation",
        response=TraceView,
        query=(
            QueryParam(
                "fields",
                {"type": "string"},
                f"comma-separated top-level fields: {', '.join(TRACE_FIELDS)}",
                True,
            ),
            QueryParam("max_chars", {"type": "integer", "minimum": 1}, "truncate every longer string"),
        ),
    ),
    Operation(
        "GET",
        "/tenants/{tenant}/traces/{trace_id}/diff",
        diff_trace,
        "The trace's prompt content vs the prompt now, and the rendered difference for this call",
        query=(
            QueryParam("against", {"type": "string"}, "draft, production, or a version number"),
            _DIFF_MAX_CHARS,
        ),
        errors=(400, 401, 404, 422),
        response=TraceDiff,
    ),
    Operation(
        "POST",
        "/tenants/{tenant}/traces/{trace_id}/playground/sessions",
        open_playground,
        "Open a playground session from a trace",
        status=(201,),
        tag="playground",
        response=SessionView,
    ),
    Operation(
        "GET",
        "/tenants/{tenant}/playground/sessions",
        list_sessions,
        "Recent playground sessions",
        query=(QueryParam("limit", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}),),
        tag="playground",
        response=SessionList,
    ),
    Operation("GET", _SESSION, get_session, "A session's state", tag="playground", response=SessionView),
    Operation("DELETE", _SESSION, delete_session, "Delete a session", tag="playground", response=DeletedSession),
    Operation(
        "PATCH",
        _SESSION + "/blocks/{block_id}",
        edit_block,
        "Update, insert, delete or move a block",
        body=EditBlockBody,
        body_required=True,
        tag="playground",
        errors=(400, 401, 404, 409, 422),
        response=SessionView,
    ),
    Operation(
        "PATCH",
        _SESSION + "/variables",
        update_variables,
        "Set variable values (null unsets), type-checked",
        body=VariablesBody,
        body_required=True,
        tag="playground",
        errors=(400, 401, 404, 422),
        response=SessionView,
    ),
    Operation(
        "PATCH",
        _SESSION + "/models",
        update_models,
        "Replace the session's models (1-8)",
        body=ModelsBody,
        body_required=True,
        tag="playground",
        response=SessionView,
    ),
    Operation(
        "POST",
        _SESSION + "/compile",
        compile_session,
        "Compile: manifest, messages, warnings, token and cost estimates",
        tag="playground",
        errors=(400, 401, 404, 422),
        response=CompiledSession,
    ),
    Operation(
        "POST",
        _SESSION + "/run",
        run_session,
        "Run on every model concurrently; each call is recorded as a trace (identical requests reuse their "
        "recorded answer unless fresh; refused before any call past the session's spend limit)",
        body=RunSessionBody,
        tag="playground",
        errors=(400, 401, 404, 422),
        response=RunOutcome,
    ),
    Operation(
        "GET",
        _SESSION + "/diff",
        diff_session,
        "Session vs its trace: content, messages, and after a run outputs and deltas",
        query=(_DIFF_MAX_CHARS,),
        tag="playground",
        errors=(400, 401, 404, 422),
        response=SessionDiff,
    ),
    Operation(
        "POST",
        _SESSION + "/save",
        save_session,
        "Save the session to the prompt's draft (409 if the draft moved, unless force)",
        body=SaveBody,
        tag="playground",
        errors=(400, 401, 404, 409, 422),
        response=SavedSession,
    ),
    Operation(
        "GET", "/tenants/{tenant}/prompts", list_prompts, "The tenant's prompts", tag="prompts", response=PromptList
    ),
    Operation(
        "GET",
        _PROMPT,
        get_prompt,
        "A prompt: the draft, a version or a label's version, with versions and labels",
        query=(
            QueryParam("version", {"type": "integer", "minimum": 1}),
            QueryParam("label", {"type": "string"}, "e.g. production; 'draft' for the draft"),
        ),
        tag="prompts",
        response=PromptDetail,
    ),
    Operation(
        "PUT",
        _PROMPT,
        put_prompt,
        "Create a prompt or replace its draft",
        body=[PutPromptBody, PromptContentBody],
        body_required=True,
        tag="prompts",
        errors=(400, 401, 404, 409, 413, 422),
        response=UpsertResult,
    ),
    Operation(
        "GET",
        _PROMPT + "/versions",
        prompt_versions,
        "Versions, labels and label history",
        tag="prompts",
        response=PromptVersions,
    ),
    Operation(
        "POST",
        _PROMPT + "/publish",
        publish_prompt,
        "Publish the draft as a new version (moves the label), or move a label to an existing version; "
        'If-Match: "<draftEtag>" (the ETag of GET …/prompts/{name}) refuses with 412 if the draft changed',
        body=PublishBody,
        tag="prompts",
        errors=(400, 401, 404, 409, 412),
        response=PublishResult,
    ),
    Operation(
        "POST",
        _PROMPT + "/run",
        run_prompt,
        "Compile the prompt, call the model, record the trace and return it",
        body=RunPromptBody,
        tag="prompts",
        errors=(400, 401, 404, 422, 502),
        response=RunPromptResult,
    ),
    Operation(
        "GET",
        _PROMPT + "/golden",
        list_golden,
        "The prompt's golden cases and its gate",
        tag="golden",
        response=GoldenList,
    ),
    Operation(
        "POST",
        _PROMPT + "/golden",
        pin_golden,
        "Pin traces (by traceIds or a list_traces filter) as golden cases, with checks and an optional judge",
        body=PinGoldenBody,
        body_required=True,
        status=(201,),
        tag="golden",
        response=PinResult,
        errors=(400, 401, 404),
    ),
    Operation(
        "DELETE",
        _PROMPT + "/golden",
        unpin_golden,
        "Unpin golden cases",
        query=(QueryParam("case_ids", {"type": "string"}, "comma-separated case ids", True),),
        tag="golden",
        response=UnpinResult,
    ),
    Operation(
        "PATCH",
        _PROMPT + "/golden/{case_id}",
        update_golden,
        "Change a golden case's expectations (required, checks, judge)",
        body=UpdateGoldenBody,
        body_required=True,
        tag="golden",
        response=GoldenCaseView,
    ),
    Operation(
        "DELETE",
        _PROMPT + "/golden/{case_id}",
        unpin_golden_case,
        "Unpin one golden case",
        tag="golden",
        response=UnpinResult,
    ),
    Operation(
        "POST",
        _PROMPT + "/replays",
        run_replay,
        "Replay the golden cases with candidate content in the background (202 with the replay id at once)",
        body=RunReplayBody,
        status=(202,),
        tag="golden",
        response=ReplayStarted,
        errors=(400, 401, 404),
    ),
    Operation(
        "GET",
        _PROMPT + "/replays",
        list_replays,
        "The prompt's replays, newest first",
        query=(QueryParam("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}),),
        tag="golden",
        response=ReplayListing,
    ),
    Operation(
        "GET", _PROMPT + "/gate", get_gate, "The prompt's gate policy (null: none)", tag="golden", response=GateSetting
    ),
    Operation(
        "PUT",
        _PROMPT + "/gate",
        put_gate,
        "Set the gate: publish then needs a passing replay of exactly the draft",
        body=_GatePolicyDoc,
        tag="golden",
        response=GateSetting,
    ),
    Operation("DELETE", _PROMPT + "/gate", delete_gate, "Remove the gate", tag="golden", response=GateSetting),
    Operation(
        "GET",
        "/tenants/{tenant}/replays/{replay_id}",
        get_replay,
        "A replay's status, summary and cases worst first; wait_seconds (0-50) long-polls until it is done",
        query=(
            QueryParam("wait_seconds", {"type": "number", "minimum": 0, "maximum": 50, "default": 0}),
            QueryParam("max_cases", {"type": "integer", "minimum": 0, "maximum": 200, "default": 25}),
        ),
        tag="golden",
        response=ReplayView,
    ),
    Operation(
        "GET",
        "/tenants/{tenant}/stats",
        trace_stats,
        "Count, errors, error rate, p50/p95 duration, tokens and cost per group",
        response=StatsResult,
        query=_query_from_model(StatsQuery, STATS_QUERY),
    ),
)


def _endpoint(rt: Runtime, op: Operation) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            tenant = await rt.auth.authenticate(request.headers.get("authorization"))
            if request.path_params.get("tenant") != tenant:
                raise not_found(request)  # another tenant's path looks exactly like a missing one
            call = Call(request, rt.app, tenant, rt)
            result = await op.handler(call)
            status, payload = result if isinstance(result, tuple) else (op.status[0], result)
            return JSONResponse(payload, status_code=status, headers={**NO_STORE, **call.headers})
        except AgntError as err:
            return error_response(err)
        except Exception:
            log_failure(logger, "%s %s failed", request.method, op.path)
            return error_response(InternalError("internal error; the server log has the details"))

    endpoint.__name__ = op.operation_id
    return endpoint


def build_api_routes(rt: Runtime) -> list[Route]:
    """One route per operation (same path, other method → Starlette picks the right one)."""
    return [Route(op.path, _endpoint(rt, op), methods=[op.method], name=op.operation_id) for op in OPERATIONS]

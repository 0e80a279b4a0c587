"""Property-based fuzzing of every MCP tool and every REST route (hypothesis, no schemathesis).

Arguments and bodies are generated from the tools' input schemas and the OpenAPI document — valid-ish
values (seeded ids, enums, nested prompt content and traces) mutated with wrong types, huge and odd
strings, nested junk, missing required fields and unknown extra fields. For every call:

* never an internal error (MCP ``code == "internal"``, HTTP 500), never a non-JSON error text;
* every error is exactly ``{"error": {"code", "message", "details"}}`` with a SPEC §4 code and a
  non-empty message (over HTTP: with the status of its code);
* a rejected call changes nothing: the list views and a digest of every row of every SQLite table are
  the same before and after. (``model_error`` is the documented exception: the failed call is recorded
  as a trace, SPEC §6.)

Models are confined to the offline ``agnt-local`` provider and to a provider LiteLLM does not know, so
no example can reach the network. The default run takes a few examples per tool/route; ``-m slow``
runs many more.

The tests are synchronous: the seeded server lives in an event loop on a portal thread, and hypothesis
draws in the test's own thread (a draw that stops an example must not unwind through an event loop).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import string
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client

from agnt_traces.config import Settings
from agnt_traces.http.openapi import openapi_document
from agnt_traces.http.routes import OPERATIONS, Operation
from agnt_traces.server.mcp import build_server
from agnt_traces.services.traces import TRACE_FIELDS
from factories import trace_payload
from http_helpers import STATUS_OF, InProcess, check_error_body, db_snapshot, in_process
from mcp_helpers import call

TOOLS = (
    "list_traces",
    "get_trace",
    "ingest_trace",
    "trace_stats",
    "list_prompts",
    "get_prompt",
    "upsert_prompt",
    "publish_prompt",
    "run_prompt",
    "diff_trace",
    "open_playground",
    "get_session",
    "list_sessions",
    "edit_block",
    "update_variables",
    "update_models",
    "compile_session",
    "run_session",
    "diff_session",
    "save_session",
    "delete_session",
    "pin_golden",
    "list_golden",
    "update_golden",
    "unpin_golden",
    "set_gate",
    "run_replay",
    "get_replay",
)

FAST = 12  # examples per tool / route in the default run
SLOW = 250  # ... with -m slow
BODY_LIMIT = 50_000
TENANT = "acme"
OTHER = "globex"


def fuzz_settings(n: int) -> settings:
    return settings(
        max_examples=n,
        deadline=None,
        database=None,  # no .hypothesis/ directory in the repository
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,  # one seeded server per test, shared by its examples
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
    )


# -- the seeded world ------------------------------------------------------------------------------------

PROMPT_CONTENT: dict[str, Any] = {
    "blocks": [
        {"id": "intro", "role": "system", "content": "You help {{ company }} customers."},
        {"id": "tone", "role": "system", "content": "Be brief.", "condition": "tier == 'premium'"},
        {"id": "ask", "role": "user", "content": "Question: {{ question }}"},
    ],
    "variables": [
        {"name": "company", "type": "string", "required": True},
        {"name": "question", "type": "string", "required": True},
        {"name": "tier", "type": "string", "default": "standard"},
        {"name": "count", "type": "integer"},
    ],
    "model": {"provider": "agnt-local", "name": "echo"},
}
RUN_VARIABLES = {"company": "Acme", "question": "refund?", "tier": "premium"}
LOCAL_MODEL = {"provider": "agnt-local", "name": "echo"}


@dataclass
class Seed:
    """What the examples aim at. ``session_ids[i]`` was opened from ``trace_ids[i]``."""

    trace_ids: list[str] = field(default_factory=list)
    session_ids: list[str] = field(default_factory=list)
    cursor: str | None = None


# -- values ----------------------------------------------------------------------------------------------

NASTY_TEXT = [
    "",
    " ",
    "\x00",
    "\x00\x01\x7f",
    "null",
    "None",
    "-1",
    "0",
    "1e309",
    "NaN",
    "true",
    "../../etc/passwd",
    "%2e%2e%2f",
    "' OR 1=1 --",
    '"; DROP TABLE traces; --',
    "{{ 7*7 }}",
    "{% raw %}",
    "\u202e\u0644\u0627",
    "🙂" * 40,
    "a" * 300,
    "*",
    "%",
    "_",
    "\\",
    "\n\t\r",
    "production",
    "draft",
    "agnt-local/echo",
]
HUGE_TEXT = ["x" * 100_000, "é" * 40_000]

text = st.one_of(st.text(max_size=30), st.sampled_from(NASTY_TEXT))
big_int = st.sampled_from([2**31, 2**63 - 1, 2**63, 2**64, 10**30, -(2**63) - 1, -(10**30)])
integers = st.one_of(st.integers(-3, 300), st.integers(-(2**63), 2**63 - 1), big_int)
floats = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.sampled_from([0.0, -0.0, 1e308, -1.5]))
scalars = st.one_of(st.none(), st.booleans(), integers, floats, text)
junk = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=10,
)

# No example may reach the network: the offline provider, or one LiteLLM does not know (refused
# locally). Params never carry api_base / base_url.
SAFE_PROVIDERS = ["agnt-local", "agnt-local", "no-such-provider"]
SAFE_PARAMS = {
    "temperature": st.one_of(floats, junk),
    "max_tokens": st.one_of(integers, junk),
    "top_p": floats,
    "seed": integers,
    "stop": st.lists(text, max_size=2),
    "timeout": st.one_of(st.floats(0.5, 5), junk),
    "api_key": text,  # credentials: refused
    "token": text,
    "extra_headers": st.fixed_dictionaries({"Authorization": st.just("Bearer sk-fuzz-0123456789abcdef")}),
}


def safe_model() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "provider": st.sampled_from(SAFE_PROVIDERS),
            "name": st.one_of(st.just("echo"), st.just("echo"), text),
        },
        optional={"params": st.fixed_dictionaries({}, optional=SAFE_PARAMS)},
    )


def safe_model_info() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {}, optional={"provider": st.sampled_from(SAFE_PROVIDERS), "name": text, "metadata": junk}
    )


TEMPLATES = [
    "You help {{ company }} customers.",
    "Question: {{ question }}",
    "{% if tier == 'premium' %}VIP{% endif %} {{ count }}",
    "{{ company|upper }} {{ question|length }}",
    "{{ nope }}",
    "{% if %}",
    "{{ ''.__class__ }}",
    "{{ 'x' * 10**7 }}",
]
BLOCK_IDS = ["intro", "tone", "ask", "extra", "Bad Id"]
VARIABLE_NAMES = ["company", "question", "tier", "count", "1bad"]


def valid_content() -> st.SearchStrategy[dict[str, Any]]:
    """Prompt content that mostly validates (and sometimes compiles): the deep paths of upsert and PUT."""
    block = st.fixed_dictionaries(
        {
            "id": st.sampled_from(BLOCK_IDS),
            "role": st.sampled_from(["system", "user", "assistant"]),
            "content": st.one_of(st.sampled_from(TEMPLATES), text),
        },
        optional={"condition": st.one_of(st.sampled_from(["tier == 'premium'", "count > 1", "1 +", ""]), text)},
    )
    variable = st.fixed_dictionaries(
        {"name": st.sampled_from(VARIABLE_NAMES)},
        optional={
            "type": st.sampled_from(["string", "number", "integer", "boolean", "list", "object", "date"]),
            "required": st.booleans(),
            "default": junk,
            "description": text,
        },
    )
    return st.fixed_dictionaries(
        {"blocks": st.lists(block, max_size=4, unique_by=lambda b: b["id"])},
        optional={
            "variables": st.lists(variable, max_size=4, unique_by=lambda v: v["name"]),
            "model": safe_model(),
            "tools": st.lists(
                st.one_of(st.just({"name": "lookup", "parameters": {"type": "object"}}), junk), max_size=2
            ),
        },
    )


def valid_trace() -> st.SearchStrategy[dict[str, Any]]:
    """A client's trace that mostly validates: the deep paths of ingest."""
    message = st.fixed_dictionaries(
        {"role": st.sampled_from(["system", "user", "assistant", "tool", "x"])},
        optional={"content": st.one_of(text, junk)},
    )
    overrides = st.fixed_dictionaries(
        {},
        optional={
            "id": st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=1, max_size=70),
            "createdAt": st.sampled_from(["2026-01-02T03:04:05Z", "2026-01-02T03:04:05.123+02:00", "yesterday"]),
            "output": st.one_of(text, st.none()),
            "messages": st.lists(message, max_size=3),
            "variables": st.dictionaries(st.text(max_size=8), junk, max_size=3),
            "tags": st.lists(text, max_size=3),
            "metadata": st.dictionaries(st.text(max_size=8), junk, max_size=3),
            "inputTokens": integers,
            "cost": st.one_of(floats, st.none()),
            "duration": floats,
            "status": st.sampled_from(["success", "error"]),
            "error": st.one_of(st.none(), st.just({"type": "RateLimitError", "message": "slow down"})),
            "source": st.sampled_from(["run", "playground", "ingest", "litellm", "x"]),
            "promptName": st.one_of(st.sampled_from(["support", "other"]), text),
        },
    )
    return overrides.map(lambda o: trace_payload(**{"model": LOCAL_MODEL, **o}))


Hint = tuple[frozenset[str], st.SearchStrategy[Any]]


def hints(seed: Seed) -> dict[str, Hint]:
    """Values that reach deep into the handlers (ids that exist, names in use), by property name."""
    s = frozenset({"string"})
    trace_ids = st.sampled_from([*seed.trace_ids, "01NOPE"])
    session_ids = st.sampled_from([*seed.session_ids, "nope"])
    prompt_names = st.sampled_from(["support", "support", "other", "Bad Name"])
    block_ids = st.sampled_from(["intro", "tone", "ask", "new-1", "Bad Id"])
    var_values = st.fixed_dictionaries(
        {},
        optional={
            "company": st.one_of(text, junk),
            "question": text,
            "tier": st.sampled_from(["premium", "standard", None]),
            "count": st.one_of(integers, junk),
            "unknown": junk,
        },
    )
    return {
        "trace_id": (s, trace_ids),
        "id": (s, trace_ids),
        "parent_trace_id": (s, trace_ids),
        "session_id": (s, session_ids),
        "name": (s, prompt_names),
        "prompt_name": (s, prompt_names),
        "block_id": (s, block_ids),
        "after": (s, block_ids),
        "label": (s, st.sampled_from(["production", "draft", "staging", "Bad!"])),
        "version": (frozenset({"integer"}), st.integers(0, 3)),
        "prompt_version": (frozenset({"integer"}), st.integers(0, 3)),
        "against": (s, st.sampled_from(["draft", "production", "1", "2", "7", "x"])),
        "fields": (frozenset({"array"}), st.lists(st.sampled_from([*TRACE_FIELDS, "outptu"]), max_size=3)),
        "since": (s, st.sampled_from(["30m", "24h", "7d", "2026-01-01T00:00:00Z", "2999-01-01T00:00:00Z", "-5m"])),
        "until": (s, st.sampled_from(["1m", "2030-01-01T00:00:00+02:00", "0d", "soon"])),
        "cursor": (s, st.sampled_from([c for c in [seed.cursor, "garbage"] if c])),
        "condition": (s, st.sampled_from(["tier == 'premium'", "company", "1 +", "''.__class__", ""])),
        "content": (
            s,
            st.sampled_from(["Hi {{ company }}", "{{ question }}!", "{{ nope }}", "{% if %}", "{{ ''.__class__ }}"]),
        ),
        "values": (frozenset({"object"}), var_values),
        "variables": (frozenset({"object"}), var_values),
        "model": (s, st.sampled_from(["echo", "agnt-local/echo", "gpt-4o"])),
        "provider": (s, st.sampled_from(SAFE_PROVIDERS)),
        "limit": (frozenset({"integer"}), st.integers(-2, 250)),
    }


class Gen:
    """Strategies for JSON values from a JSON schema (``$ref`` into ``defs``), with hints by property
    name and overrides by ``$ref`` name."""

    def __init__(self, defs: dict[str, Any], hints: dict[str, Hint]) -> None:
        self.defs = defs
        self.hints = hints
        self.overrides: dict[str, st.SearchStrategy[Any]] = {
            "ModelConfig": safe_model(),
            "ModelInfo": safe_model_info(),
        }
        content = self._value(self.defs["PromptContent"], 1)
        self.overrides |= {
            "PromptContent": st.one_of(valid_content(), valid_content(), content),
            "PromptContentBody": st.one_of(valid_content(), self._value(self.defs["PromptContentBody"], 1)),
            "TraceIn": st.one_of(valid_trace(), valid_trace(), self._value(self.defs["TraceIn"], 1)),
        }

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            schema = self.defs[schema["$ref"].rsplit("/", 1)[-1]]
        return schema

    def types(self, schema: dict[str, Any]) -> set[str]:
        schema = self.resolve(schema)
        if "anyOf" in schema or "oneOf" in schema:
            return {t for sub in schema.get("anyOf", schema.get("oneOf", [])) for t in self.types(sub)}
        t = schema.get("type")
        if isinstance(t, list):
            return set(t)
        return {t} if t else {"string", "object", "array", "integer", "number", "boolean", "null"}

    def value(self, schema: dict[str, Any], name: str | None = None, depth: int = 0) -> st.SearchStrategy[Any]:
        ref = schema.get("$ref", "").rsplit("/", 1)[-1]
        if ref in self.overrides:
            return self.overrides[ref]
        base = self._value(self.resolve(schema), depth)
        if name in self.hints:
            kinds, hint = self.hints[name]
            if kinds & self.types(schema):
                return st.one_of(hint, hint, base)
        return base

    def _value(self, schema: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
        if "enum" in schema:
            return st.sampled_from(schema["enum"])
        if "const" in schema:
            return st.just(schema["const"])
        subs = schema.get("anyOf") or schema.get("oneOf")
        if subs:
            return st.one_of([self.value(sub, depth=depth + 1) for sub in subs])
        t = schema.get("type")
        if isinstance(t, list):
            return st.one_of([self._value({**schema, "type": one}, depth) for one in t])
        if t == "string":
            lo, hi = schema.get("minLength", 0), min(schema.get("maxLength", 40), 40)
            return st.one_of(st.text(min_size=lo, max_size=max(lo, hi)), st.sampled_from(NASTY_TEXT))
        if t == "integer":
            lo, hi = schema.get("minimum"), schema.get("maximum")
            return st.one_of(st.integers(lo, hi), integers) if lo is not None or hi is not None else integers
        if t == "number":
            return floats
        if t == "boolean":
            return st.booleans()
        if t == "null":
            return st.none()
        if t == "array":
            items = schema.get("items", {})
            hi = min(schema.get("maxItems", 3), 3)
            lo = min(schema.get("minItems", 0), hi)
            if depth > 4:
                return st.just([])
            return st.lists(self.value(items, depth=depth + 1), min_size=lo, max_size=hi)
        if t == "object" or "properties" in schema:
            props: dict[str, Any] = schema.get("properties", {})
            if not props:
                return st.dictionaries(st.text(max_size=8), junk, max_size=3) if depth < 4 else st.just({})
            required = set(schema.get("required", []))
            fixed = {k: self.value(v, k, depth + 1) for k, v in props.items() if k in required}
            optional = {k: self.value(v, k, depth + 1) for k, v in props.items() if k not in required}
            return st.fixed_dictionaries(fixed, optional=optional)
        return junk

    def arguments(self, data: st.DataObject, schema: dict[str, Any]) -> dict[str, Any]:
        """A valid-ish object for ``schema``, then up to three mutations."""
        args: dict[str, Any] = data.draw(self.value(schema), label="valid-ish")
        if not isinstance(args, dict):
            return args
        props = list(self.resolve(schema).get("properties", {}))
        for _ in range(data.draw(st.sampled_from([0, 0, 0, 1, 1, 2, 3]), label="mutations")):
            kind = data.draw(st.sampled_from(["junk", "drop", "extra", "huge", "null", "nest"]), label="mutation")
            if kind == "extra":
                key = data.draw(st.one_of(st.text(min_size=1, max_size=12), st.sampled_from(["promt_name", "id"])))
                args[key] = data.draw(junk)
            elif not props:
                continue
            else:
                key = data.draw(st.sampled_from(props), label="field")
                if kind == "drop":
                    args.pop(key, None)
                elif kind == "junk":
                    args[key] = data.draw(junk, label="junk")
                elif kind == "huge":
                    args[key] = data.draw(st.sampled_from(HUGE_TEXT))
                elif kind == "null":
                    args[key] = None
                else:
                    args[key] = {"nested": [args.get(key), {"deeper": [[{}]]}]}
        return args


DOC = openapi_document()
DEFS: dict[str, Any] = DOC["components"]["schemas"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


# Tool arguments whose schema is a bare "object": generate them from the models they are validated as.
TOOL_ARG_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("upsert_prompt", "content"): _ref("PromptContent"),
    ("ingest_trace", "trace"): _ref("TraceIn"),
    ("update_models", "models"): {"type": "array", "items": _ref("ModelConfig"), "minItems": 1, "maxItems": 8},
    ("run_prompt", "messages"): {"anyOf": [{"type": "array", "items": _ref("Message")}, {"type": "null"}]},
}


def refined(tool: str, schema: dict[str, Any]) -> dict[str, Any]:
    props = {name: TOOL_ARG_SCHEMAS.get((tool, name), sub) for name, sub in schema.get("properties", {}).items()}
    return {**schema, "properties": props}


# -- MCP -------------------------------------------------------------------------------------------------


@dataclass(repr=False)
class McpWorld:
    client: Client
    db_path: str
    seed: Seed
    schemas: dict[str, dict[str, Any]]

    async def ensure(self) -> None:
        """Keep a live session in every slot (delete_session may have removed one); the number of slots
        never changes, so the strategies drawing from them stay the same."""
        live = {s["id"] for s in (await call(self.client, "list_sessions", limit=200))["sessions"]}
        for i, sid in enumerate(self.seed.session_ids):
            if sid not in live:
                opened = await call(self.client, "open_playground", trace_id=self.seed.trace_ids[i])
                self.seed.session_ids[i] = opened["id"]

    async def snapshot(self) -> Any:
        views = [
            await call(self.client, "list_traces", limit=200),
            await call(self.client, "list_prompts"),
            await call(self.client, "list_sessions", limit=200),
        ]
        return views, db_snapshot(self.db_path)


@pytest.fixture
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal("asyncio") as p:
        yield p


@pytest.fixture
def mcp_world(settings: Settings, portal: BlockingPortal) -> Iterator[McpWorld]:
    with portal.wrap_async_context_manager(_mcp_world(settings)) as world:
        yield world


@asynccontextmanager
async def _mcp_world(settings: Settings) -> AsyncIterator[McpWorld]:
    async with Client(build_server(settings)) as c:
        seed = Seed()
        await call(c, "upsert_prompt", name="support", content=PROMPT_CONTENT, description="seeded")
        await call(c, "publish_prompt", name="support")
        run = await call(c, "run_prompt", name="support", variables=RUN_VARIABLES, tags=["seed"])
        seed.trace_ids.append(run["trace"]["id"])
        await call(c, "ingest_trace", trace=trace_payload(id="ingested-1", model=LOCAL_MODEL))
        seed.trace_ids.append("ingested-1")
        for tid in seed.trace_ids:
            seed.session_ids.append((await call(c, "open_playground", trace_id=tid))["id"])
        page = await call(c, "list_traces", limit=1)
        seed.cursor = page["nextCursor"]
        schemas = {t.name: t.input_schema for t in (await c.list_tools()).tools}
        yield McpWorld(c, settings.db_path, seed, schemas)


async def check_tool_call(world: McpWorld, tool: str, args: dict[str, Any]) -> None:
    await world.ensure()
    before = await world.snapshot()
    try:
        result = await world.client.call_tool(tool, args)
    except Exception as exc:  # the server must answer every call with a result
        raise AssertionError(f"{tool}({_short(args)}) raised {exc!r}") from exc
    assert result.content, f"{tool}: empty result"
    text = result.content[0].text  # type: ignore[union-attr]
    if not result.is_error:
        assert isinstance(result.structured_content, dict), f"{tool}: no structured result"
        return
    try:
        payload = json.loads(text)
    except ValueError:
        raise AssertionError(f"{tool}({_short(args)}): error text is not JSON: {text[:300]!r}") from None
    err = check_error_body(payload)
    assert result.structured_content == payload, f"{tool}: structured and text errors differ"
    assert err["code"] != "internal", f"{tool}({_short(args)}) -> internal error: {err}"
    if err["code"] == "model_error":
        return  # the failed model call is recorded as a trace (SPEC §6): a documented change
    after = await world.snapshot()
    assert after == before, f"{tool}({_short(args)}) was rejected ({err['code']}) but changed the store"


def _short(value: Any, limit: int = 400) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"…({len(text)} chars)"


def test_the_fuzzed_tools_are_all_the_tools(mcp_world: McpWorld) -> None:
    assert set(mcp_world.schemas) == set(TOOLS)


def _fuzz_tool(world: McpWorld, portal: BlockingPortal, tool: str, data: st.DataObject) -> None:
    gen = Gen(DEFS, hints(world.seed))
    args = gen.arguments(data, refined(tool, world.schemas[tool]))
    portal.call(check_tool_call, world, tool, args)


@pytest.mark.parametrize("tool", TOOLS)
@fuzz_settings(FAST)
@given(data=st.data())
def test_fuzz_mcp_tool(mcp_world: McpWorld, portal: BlockingPortal, tool: str, data: st.DataObject) -> None:
    _fuzz_tool(mcp_world, portal, tool, data)


@pytest.mark.slow
@pytest.mark.parametrize("tool", TOOLS)
@fuzz_settings(SLOW)
@given(data=st.data())
def test_fuzz_mcp_tool_slow(mcp_world: McpWorld, portal: BlockingPortal, tool: str, data: st.DataObject) -> None:
    _fuzz_tool(mcp_world, portal, tool, data)


def _fuzz_sequence(world: McpWorld, portal: BlockingPortal, data: st.DataObject) -> None:
    """Several tools in a row on the same store: state built by one call is what the next one fuzzes."""
    for _ in range(data.draw(st.integers(1, 6), label="calls")):
        tool = data.draw(st.sampled_from(TOOLS), label="tool")
        _fuzz_tool(world, portal, tool, data)


@fuzz_settings(FAST * 2)
@given(data=st.data())
def test_fuzz_mcp_sequences(mcp_world: McpWorld, portal: BlockingPortal, data: st.DataObject) -> None:
    _fuzz_sequence(mcp_world, portal, data)


@pytest.mark.slow
@fuzz_settings(SLOW * 2)
@given(data=st.data())
def test_fuzz_mcp_sequences_slow(mcp_world: McpWorld, portal: BlockingPortal, data: st.DataObject) -> None:
    _fuzz_sequence(mcp_world, portal, data)


def test_unknown_tools(mcp_world: McpWorld, portal: BlockingPortal) -> None:
    for tool in ("nope", "", "list_traces ", "LIST_TRACES", "x" * 10_000):
        portal.call(check_tool_call, mcp_world, tool, {})


EDGE_NUMBERS = [2**63, 2**63 - 1, -(2**63) - 1, 10**30, 0, -1, 1e308, -1e308, 1.7976931348623157e308, 5e-324]
EDGE_TIMES = ["100000000000d", "999999999d", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "99999999999w"]


def test_edge_numbers_and_times_in_every_argument(mcp_world: McpWorld, portal: BlockingPortal) -> None:
    """Every numeric argument (top level, and in a trace) with values past SQLite's and JSON's limits,
    every time argument with values past datetime's: refused or handled, never an internal error."""
    world = mcp_world
    for tool, schema in sorted(world.schemas.items()):
        for name, sub in schema.get("properties", {}).items():
            kinds = Gen(DEFS, {}).types(sub)
            values: list[Any] = []
            if kinds & {"integer", "number"}:
                values += EDGE_NUMBERS
            if name in ("since", "until", "against"):
                values += EDGE_TIMES
            for value in values:
                args = {"session_id": world.seed.session_ids[0], "trace_id": world.seed.trace_ids[0], "name": "support"}
                args = {k: v for k, v in args.items() if k in schema.get("properties", {})}
                portal.call(check_tool_call, world, tool, {**args, name: value})
    numeric = ["promptVersion", "inputTokens", "outputTokens", "totalTokens", "cost", "duration"]
    for field_name in numeric:
        for value in EDGE_NUMBERS:
            trace = trace_payload(model=LOCAL_MODEL, **{field_name: value})
            portal.call(check_tool_call, world, "ingest_trace", {"trace": trace})
    for created in EDGE_TIMES:
        portal.call(check_tool_call, world, "ingest_trace", {"trace": trace_payload(createdAt=created)})
    # sums over many large (accepted) values stay finite: stats are still JSON
    for _ in range(3):
        big = trace_payload(model=LOCAL_MODEL, cost=1e6, duration=1e7, inputTokens=10**12, outputTokens=10**12)
        portal.call(check_tool_call, world, "ingest_trace", {"trace": big})
    for group_by in ("prompt", "version", "model", "status"):
        portal.call(check_tool_call, world, "trace_stats", {"group_by": group_by})


def test_edge_numbers_over_rest(rest_world: RestWorld, portal: BlockingPortal) -> None:
    op = OPS["GET /tenants/{tenant}/traces"]
    auth = rest_world.env.auth(TENANT)
    calls = []
    for name in ("prompt_version", "min_total_tokens", "min_cost", "min_duration", "limit", "since", "until"):
        for value in [*EDGE_NUMBERS, *EDGE_TIMES]:
            calls.append(
                (op, RestCall("GET", "/api/v1/tenants/acme/traces", auth, [(name, str(value))], None, False, True))
            )
    post = OPS["POST /tenants/{tenant}/traces"]
    for field_name in ("promptVersion", "inputTokens", "cost", "duration"):
        for value in EDGE_NUMBERS:
            body = json.dumps(trace_payload(model=LOCAL_MODEL, **{field_name: value})).encode()
            headers = {**auth, "content-type": "application/json"}
            calls.append((post, RestCall("POST", "/api/v1/tenants/acme/traces", headers, [], body, False, True)))
    for name in ("publish", "run"):
        for value in EDGE_NUMBERS:
            op = OPS[f"POST /tenants/{{tenant}}/prompts/{{name}}/{name}"]
            body = json.dumps({"version": value}).encode()
            headers = {**auth, "content-type": "application/json"}
            calls.append(
                (op, RestCall("POST", f"/api/v1/tenants/acme/prompts/support/{name}", headers, [], body, False, True))
            )
    for op, rc in calls:
        portal.call(check_rest_call, rest_world, op, rc)


# -- REST ------------------------------------------------------------------------------------------------


@dataclass(repr=False)
class RestWorld:
    env: InProcess
    db_path: str
    seed: Seed

    async def ensure(self) -> None:
        r = await self.env.request(TENANT, "GET", "/playground/sessions", params={"limit": 200})
        live = {s["id"] for s in r.json()["sessions"]}
        for i, sid in enumerate(self.seed.session_ids):
            if sid not in live:
                r = await self.env.request(TENANT, "POST", f"/traces/{self.seed.trace_ids[i]}/playground/sessions")
                self.seed.session_ids[i] = r.json()["id"]

    async def snapshot(self) -> Any:
        views = []
        for path, params in (("/traces", {"limit": 200}), ("/prompts", {}), ("/playground/sessions", {"limit": 200})):
            r = await self.env.request(TENANT, "GET", path, params=params)
            assert r.status_code == 200, r.text
            views.append(r.json())
        return views, db_snapshot(self.db_path)


@pytest.fixture
def rest_world(settings: Settings, portal: BlockingPortal) -> Iterator[RestWorld]:
    with portal.wrap_async_context_manager(_rest_world(settings)) as world:
        yield world


@asynccontextmanager
async def _rest_world(settings: Settings) -> AsyncIterator[RestWorld]:
    fuzz_settings_ = dataclasses.replace(settings, max_body_bytes=BODY_LIMIT)
    async with in_process(fuzz_settings_, TENANT, OTHER) as env:
        seed = Seed()
        r = await env.request(TENANT, "PUT", "/prompts/support", json={"content": PROMPT_CONTENT})
        assert r.status_code == 200, r.text
        assert (await env.request(TENANT, "POST", "/prompts/support/publish")).status_code == 200
        r = await env.request(TENANT, "POST", "/prompts/support/run", json={"variables": RUN_VARIABLES})
        assert r.status_code == 200, r.text
        seed.trace_ids.append(r.json()["trace"]["id"])
        r = await env.request(TENANT, "POST", "/traces", json=trace_payload(id="ingested-1", model=LOCAL_MODEL))
        assert r.status_code == 201, r.text
        seed.trace_ids.append("ingested-1")
        for tid in seed.trace_ids:
            r = await env.request(TENANT, "POST", f"/traces/{tid}/playground/sessions")
            assert r.status_code == 201, r.text
            seed.session_ids.append(r.json()["id"])
        seed.cursor = (await env.request(TENANT, "GET", "/traces", params={"limit": 1})).json()["nextCursor"]
        # the other tenant has data of its own, under the same names
        await env.request(OTHER, "POST", "/traces", json=trace_payload(id="ingested-1", output="globex data"))
        await env.request(OTHER, "PUT", "/prompts/support", json={"content": PROMPT_CONTENT})
        yield RestWorld(env, settings.db_path, seed)


def _query_value(value: Any) -> list[str]:
    if isinstance(value, list):
        return [v for item in value for v in _query_value(item)]
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if value is None:
        return [""]
    if isinstance(value, dict):
        return [json.dumps(value)]
    return [str(value)]


def _quote(segment: str) -> str:
    return urllib.parse.quote(segment, safe="") if segment else segment


@dataclass
class RestCall:
    method: str
    url: str
    headers: dict[str, str]
    params: list[tuple[str, str]]
    content: bytes | None
    fuzzed_path: bool
    own_tenant: bool

    def __repr__(self) -> str:
        body = None if self.content is None else _short(self.content, 300)
        return f"{self.method} {self.url} params={_short(self.params, 300)} body={body} headers={self.headers}"


def draw_rest_call(world: RestWorld, op: Operation, data: st.DataObject) -> RestCall:
    gen = Gen(DEFS, hints(world.seed))
    doc = DOC["paths"]["/api/v1" + op.path][op.method.lower()]
    env = world.env

    # the tenant segment and the token
    tenant = data.draw(st.sampled_from([TENANT] * 8 + [OTHER, "nobody", ""]), label="tenant")
    auth_kind = data.draw(st.sampled_from(["own"] * 8 + ["other", "none", "junk"]), label="auth")
    headers: dict[str, str] = {}
    if auth_kind == "own":
        headers = env.auth(TENANT)
    elif auth_kind == "other":
        headers = env.auth(OTHER)
    elif auth_kind == "junk":
        value = data.draw(st.text(alphabet=string.printable.strip(), max_size=40))
        headers = {"Authorization": f"Bearer {value}".strip()}
    own_tenant = (tenant, auth_kind) in ((TENANT, "own"), (OTHER, "other"))  # a token on its own path

    # path parameters
    fuzzed_path = tenant != TENANT
    path = op.path.replace("{tenant}", _quote(tenant))
    for param in [p for p in doc["parameters"] if p["in"] == "path" and p["name"] != "tenant"]:
        name = param["name"]
        hint = gen.hints.get(name, (frozenset(), st.nothing()))[1]
        choice = data.draw(st.one_of(hint, hint, hint, text), label=name)
        fuzzed_path |= choice not in _all_hint_values(world, name)
        path = path.replace("{" + name + "}", _quote(str(choice)))

    # query parameters: documented ones (from their schemas), sometimes an unknown one
    params: list[tuple[str, str]] = []
    for param in [p for p in doc["parameters"] if p["in"] == "query"]:
        if data.draw(st.booleans(), label=f"has {param['name']}"):
            value = data.draw(st.one_of(gen.value(param["schema"], param["name"]), text), label=param["name"])
            params += [(param["name"], v) for v in _query_value(value)]
    if data.draw(st.integers(0, 9), label="unknown query") == 9:
        params.append((data.draw(st.text(min_size=1, max_size=10)), data.draw(text)))

    # the body
    content: bytes | None = None
    if "requestBody" in doc:
        schema = doc["requestBody"]["content"]["application/json"]["schema"]
        kind = data.draw(st.sampled_from(["schema"] * 6 + ["junk", "raw", "none", "huge"]), label="body")
    else:
        schema = {"type": "object"}
        kind = data.draw(st.sampled_from(["none"] * 6 + ["junk", "raw", "schema"]), label="body")
    if kind == "schema":
        content = json.dumps(gen.arguments(data, schema)).encode()
    elif kind == "junk":
        content = json.dumps(data.draw(junk)).encode()
    elif kind == "raw":
        content = data.draw(
            st.one_of(
                st.binary(max_size=40),
                st.sampled_from([b"", b"{", b"[1, 2]", b'{"a": NaN}', b'{"a": Infinity}', b"\xff\xfe", b"{}" * 3]),
            ),
            label="raw body",
        )
    elif kind == "huge":
        content = json.dumps({"description": "x" * (BODY_LIMIT + 1)}).encode()
    if content is not None:
        headers = {**headers, "content-type": "application/json"}
    return RestCall(op.method, "/api/v1" + path, headers, params, content, fuzzed_path, own_tenant)


def _all_hint_values(world: RestWorld, name: str) -> set[str]:
    known = {
        "trace_id": set(world.seed.trace_ids),
        "session_id": set(world.seed.session_ids),
        "name": {"support", "other"},
        "block_id": {"intro", "tone", "ask", "new-1"},
    }
    return known.get(name, set())


async def check_rest_call(world: RestWorld, op: Operation, rc: RestCall) -> None:
    await world.ensure()
    before = await world.snapshot()
    r = await world.env.client.request(rc.method, rc.url, headers=rc.headers, params=rc.params, content=rc.content)
    assert r.status_code != 500, f"{rc!r} -> 500: {r.text[:500]}"
    if r.status_code < 400:
        if 300 <= r.status_code < 400:  # e.g. a trailing-slash redirect for an empty path segment
            assert rc.fuzzed_path or not rc.url.endswith("/"), f"{rc!r} -> {r.status_code}"
            assert await world.snapshot() == before
            return
        assert rc.own_tenant, f"{rc!r} succeeded ({r.status_code}) without a token on its own tenant's path"
        assert r.status_code in op.status, f"{rc!r} -> {r.status_code}"
        assert isinstance(r.json(), dict)
        return
    assert r.headers["content-type"].startswith("application/json"), f"{rc!r} -> {r.headers['content-type']}"
    try:
        body = r.json()
    except ValueError:
        raise AssertionError(f"{rc!r} -> {r.status_code} with a non-JSON body: {r.text[:300]!r}") from None
    err = check_error_body(body)
    expected = STATUS_OF[err["code"]]
    assert r.status_code == expected or (r.status_code == 405 and err["code"] == "invalid_argument"), (
        f"{rc!r} -> {r.status_code} with code {err['code']}"
    )
    if err["code"] == "model_error":
        return  # recorded as a trace by design (SPEC §6)
    after = await world.snapshot()
    assert after == before, f"{rc!r} was rejected ({r.status_code} {err['code']}) but changed the store"


OPS = {f"{op.method} {op.path}": op for op in OPERATIONS}


def test_the_fuzzed_routes_are_all_the_documented_routes(rest_world: RestWorld, portal: BlockingPortal) -> None:
    r = portal.call(rest_world.env.client.get, "/api/v1/openapi.json")
    served = {
        f"{method.upper()} {path.removeprefix('/api/v1')}"
        for path, ops in r.json()["paths"].items()
        for method in ops
        if path.startswith("/api/v1/tenants/")
    }
    assert served == set(OPS)


def _fuzz_route(world: RestWorld, portal: BlockingPortal, op: Operation, data: st.DataObject) -> None:
    portal.call(check_rest_call, world, op, draw_rest_call(world, op, data))


@pytest.mark.parametrize("op", list(OPS))
@fuzz_settings(FAST)
@given(data=st.data())
def test_fuzz_rest_route(rest_world: RestWorld, portal: BlockingPortal, op: str, data: st.DataObject) -> None:
    _fuzz_route(rest_world, portal, OPS[op], data)


@pytest.mark.slow
@pytest.mark.parametrize("op", list(OPS))
@fuzz_settings(SLOW)
@given(data=st.data())
def test_fuzz_rest_route_slow(rest_world: RestWorld, portal: BlockingPortal, op: str, data: st.DataObject) -> None:
    _fuzz_route(rest_world, portal, OPS[op], data)


def _fuzz_rest_sequence(world: RestWorld, portal: BlockingPortal, data: st.DataObject) -> None:
    for _ in range(data.draw(st.integers(1, 6), label="calls")):
        op = OPS[data.draw(st.sampled_from(list(OPS)), label="route")]
        _fuzz_route(world, portal, op, data)


@fuzz_settings(FAST * 2)
@given(data=st.data())
def test_fuzz_rest_sequences(rest_world: RestWorld, portal: BlockingPortal, data: st.DataObject) -> None:
    _fuzz_rest_sequence(rest_world, portal, data)


@pytest.mark.slow
@fuzz_settings(SLOW * 2)
@given(data=st.data())
def test_fuzz_rest_sequences_slow(rest_world: RestWorld, portal: BlockingPortal, data: st.DataObject) -> None:
    _fuzz_rest_sequence(rest_world, portal, data)


def test_unknown_paths_and_methods_answer_in_the_one_shape(rest_world: RestWorld, portal: BlockingPortal) -> None:
    portal.call(_unknown_paths, rest_world)


async def _unknown_paths(rest_world: RestWorld) -> None:
    env = rest_world.env
    before = await rest_world.snapshot()
    probes: list[tuple[str, str]] = [
        ("GET", "/api/v1/tenants/acme/nothing"),
        ("DELETE", "/api/v1/tenants/acme/traces"),
        ("PUT", "/api/v1/tenants/acme/traces/ingested-1"),
        ("POST", "/api/v1/tenants/acme/prompts"),
        ("PATCH", "/api/v1/tenants/acme/prompts/support"),
        ("GET", "/api/v1/tenants"),
        ("GET", "/api/v2/tenants/acme/traces"),
        ("GET", "/api/v1/tenants/acme/traces/" + "x" * 5000),
        ("GET", "/api/v1/tenants/acme/traces/%00"),
        ("GET", "/api/v1/tenants/acme/traces/..%2F..%2Fprompts"),
    ]
    for method, url in probes:
        r = await env.client.request(method, url, headers=env.auth(TENANT))
        assert r.status_code in (400, 404, 405), (method, url, r.status_code)
        err = check_error_body(r.json())
        assert r.status_code == STATUS_OF[err["code"]] or r.status_code == 405
    assert await rest_world.snapshot() == before


# -- ids -------------------------------------------------------------------------------------------------

_ULID = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _id_ms(trace_id: str) -> int:
    ms = 0
    for ch in trace_id[:10]:
        ms = ms * 32 + _ULID.index(ch)
    return ms


@fuzz_settings(FAST * 10)
@given(created=st.datetimes(timezones=st.just(dt.UTC)), count=st.integers(1, 3))
def test_a_clients_created_at_never_moves_the_time_in_the_servers_own_ids(created: dt.datetime, count: int) -> None:
    """An ingested trace's id may carry the client's createdAt (any year); the ids the server makes
    afterwards still carry the time they were made, and still sort in the order they were made."""
    from agnt_traces.ids import new_id, now_ms

    for _ in range(count):
        client = new_id(int(created.timestamp() * 1000))
        assert len(client) == 26 and set(client) <= set(_ULID)
    before = now_ms()
    ours = [new_id() for _ in range(3)]
    after = now_ms()
    assert all(before - 1000 <= _id_ms(i) <= after for i in ours), (created, ours)
    assert ours == sorted(ours)

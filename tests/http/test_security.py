"""Security: template injection through every path that compiles, tenant isolation through REST, MCP
over HTTP and MCP resources, and secrets (API keys, bearer tokens) kept out of storage, logs and errors.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from agnt_traces.app import open_app
from agnt_traces.config import Settings
from agnt_traces.server.mcp import build_server
from agnt_traces.tokens import hash_token, new_token
from factories import trace_payload
from http_helpers import InProcess, check_error_body, in_process
from injection_corpus import CONDITION_PAYLOADS, FORBIDDEN_IN_MESSAGES, PAYLOADS
from live_http import live_server
from mcp_helpers import call, call_error
from modelserver import ModelServer

pytestmark = pytest.mark.anyio

FORBIDDEN = tuple(FORBIDDEN_IN_MESSAGES)
PER_PAYLOAD_SECONDS = 3.0  # every refusal, end to end; typically well under 0.2 s
LOCAL_MODEL = {"provider": "agnt-local", "name": "echo"}

CONTENT: dict[str, Any] = {
    "blocks": [
        {"id": "intro", "role": "system", "content": "You help {{ company }} customers."},
        {"id": "ask", "role": "user", "content": "Question: {{ question }}"},
    ],
    "variables": [
        {"name": "company", "type": "string", "required": True},
        {"name": "question", "type": "string", "required": True},
    ],
    "model": LOCAL_MODEL,
}
VARIABLES = {"company": "Acme", "question": "refund?"}


def with_block(content: str = "ok", condition: str | None = None) -> dict[str, Any]:
    """CONTENT plus one block holding an injection payload (as content or as condition)."""
    block: dict[str, Any] = {"id": "payload", "role": "user", "content": content}
    if condition is not None:
        block["condition"] = condition
    return {**CONTENT, "blocks": [*CONTENT["blocks"], block]}


def assert_clean(text: str, what: Any) -> None:
    for bad in FORBIDDEN:
        assert bad not in text, f"{bad!r} leaked for {what!r}: {text[:500]}"


def result_text(result: Any) -> str:
    return "".join(getattr(part, "text", "") for part in result.content or [])


class Refusals:
    """Collects every payload that was not refused properly, so one run reports them all."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.slowest = 0.0

    def timed(self, started: float, payload: str) -> None:
        elapsed = time.monotonic() - started
        self.slowest = max(self.slowest, elapsed)
        if elapsed > PER_PAYLOAD_SECONDS:
            self.problems.append(f"{elapsed:.1f} s to refuse {payload[:80]!r}")

    def check(self) -> None:
        assert not self.problems, "\n".join(self.problems[:30])


async def tool_result(c: Client, tool: str, **args: Any) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(structured result, None) on success, (None, error) on an error result; always clean."""
    result = await c.call_tool(tool, args)
    text = result_text(result)
    assert_clean(text, (tool, args))
    if result.is_error:
        return None, check_error_body(json.loads(text), forbidden=FORBIDDEN)
    return result.structured_content, None


# -- template injection: MCP ---------------------------------------------------------------------------


async def test_injection_through_upsert_prompt_and_run_prompt(settings: Settings) -> None:
    refusals = Refusals()
    cases = [(p, with_block(content=p)) for p in PAYLOADS]
    cases += [(c, with_block(condition=c)) for c in CONDITION_PAYLOADS]
    async with Client(build_server(settings)) as c:
        for i, (payload, content) in enumerate(cases):
            started = time.monotonic()
            _, err = await tool_result(c, "upsert_prompt", name=f"inj-{i}", content=content)
            if err is None:  # parses: it must be refused when it renders
                for label in ("draft", "production"):
                    if label == "production":
                        await call(c, "publish_prompt", name=f"inj-{i}")
                    _, err = await tool_result(c, "run_prompt", name=f"inj-{i}", variables=VARIABLES, label=label)
                    if err is None or err["code"] != "compile_error":
                        refusals.problems.append(f"run_prompt({label}) of {payload[:80]!r}: {err}")
            elif err["code"] != "compile_error":
                refusals.problems.append(f"upsert_prompt of {payload[:80]!r}: {err}")
            refusals.timed(started, payload)
        assert (await call(c, "list_traces"))["traces"] == []  # nothing was ever sent to a model
    refusals.check()


async def _session(c: Client) -> str:
    await call(c, "upsert_prompt", name="support", content=CONTENT)
    await call(c, "publish_prompt", name="support")
    run = await call(c, "run_prompt", name="support", variables=VARIABLES)
    return str((await call(c, "open_playground", trace_id=run["trace"]["id"]))["id"])


async def test_injection_through_edit_block_on_a_session(settings: Settings) -> None:
    refusals = Refusals()
    edits: list[tuple[str, dict[str, Any]]] = []
    for p in PAYLOADS:
        edits.append((p, {"op": "update", "block_id": "ask", "content": p}))
        edits.append((p, {"op": "insert", "block_id": "evil", "after": "intro", "content": p, "role": "system"}))
    for cond in CONDITION_PAYLOADS:
        edits.append((cond, {"op": "update", "block_id": "ask", "condition": cond}))
    async with Client(build_server(settings)) as c:
        sid = await _session(c)
        clean = await call(c, "get_session", session_id=sid)
        for payload, edit in edits:
            started = time.monotonic()
            _, err = await tool_result(c, "edit_block", session_id=sid, **edit)
            if err is None:  # accepted as text: compiling and running it must be refused
                for tool in ("compile_session", "run_session", "diff_session"):
                    _, err2 = await tool_result(c, tool, session_id=sid)
                    if tool != "diff_session" and (err2 is None or err2["code"] != "compile_error"):
                        refusals.problems.append(f"{tool} after edit {edit['op']} {payload[:60]!r}: {err2}")
                # back to the clean session for the next payload
                await call(c, "delete_session", session_id=sid)
                sid = await _reopen(c, clean["traceId"])
            elif err["code"] != "compile_error":
                refusals.problems.append(f"edit_block {edit['op']} {payload[:60]!r}: {err}")
            refusals.timed(started, payload)
        playground = await call(c, "list_traces", source="playground")
        assert playground["traces"] == []  # no payload ever reached a model
    refusals.check()


async def _reopen(c: Client, trace_id: str) -> str:
    return str((await call(c, "open_playground", trace_id=trace_id))["id"])


LITERAL_VALUES = [*PAYLOADS, *CONDITION_PAYLOADS, "{{ 7*7 }}", "{% raw %}{{ x }}{% endraw %}", "{{ company }}", "}}{{"]


async def test_variable_values_render_literally_never_evaluated(settings: Settings) -> None:
    async with Client(build_server(settings)) as c:
        sid = await _session(c)
        for value in LITERAL_VALUES:
            started = time.monotonic()
            await call(c, "update_variables", session_id=sid, values={"question": value, "company": value})
            compiled = await call(c, "compile_session", session_id=sid)
            assert compiled["messages"][0]["content"] == "Question: " + value, value
            assert compiled["manifest"]["system"] == f"You help {value} customers."
            assert_clean(json.dumps(compiled), value)
            assert time.monotonic() - started < PER_PAYLOAD_SECONDS, value
        # through a real (offline) model call too, and through run_prompt's variables
        await call(c, "update_variables", session_id=sid, values={"question": "{{ 7*7 }}", "company": "{{ 6*7 }}"})
        (run,) = (await call(c, "run_session", session_id=sid))["runs"]
        trace = await call(c, "get_trace", trace_id=run["traceId"])
        assert trace["messages"][0]["content"] == "Question: {{ 7*7 }}"
        assert trace["manifest"]["system"] == "You help {{ 6*7 }} customers."
        assert "49" not in trace["output"] and "{{ 7*7 }}" in trace["output"]
        for value in ("{{ 7*7 }}", "{{ ''.__class__ }}", PAYLOADS[2]):
            out = await call(c, "run_prompt", name="support", variables={**VARIABLES, "question": value})
            assert out["trace"]["messages"][0]["content"] == "Question: " + value


# -- template injection: REST ---------------------------------------------------------------------------


async def test_injection_through_rest_put_patch_and_compile(settings: Settings) -> None:
    refusals = Refusals()
    async with in_process(settings, "acme") as env:

        async def req(method: str, path: str, **kw: Any) -> httpx2.Response:
            r = await env.request("acme", method, path, **kw)
            assert r.status_code != 500, r.text
            assert_clean(r.text, (method, path))
            if r.status_code >= 400:
                check_error_body(r.json(), forbidden=FORBIDDEN)
            return r

        assert (await req("PUT", "/prompts/support", json={"content": CONTENT})).status_code == 200
        await req("POST", "/prompts/support/publish")
        trace = (await req("POST", "/prompts/support/run", json={"variables": VARIABLES})).json()["trace"]
        sid = (await req("POST", f"/traces/{trace['id']}/playground/sessions")).json()["id"]

        cases = [(p, with_block(content=p), {"content": p}) for p in PAYLOADS]
        cases += [(cond, with_block(condition=cond), {"condition": cond}) for cond in CONDITION_PAYLOADS]
        for i, (payload, content, patch) in enumerate(cases):
            started = time.monotonic()
            # PUT: refused on upload, or on the run of the draft
            r = await req("PUT", f"/prompts/inj-{i}", json={"content": content})
            if r.status_code == 200:
                r = await req("POST", f"/prompts/inj-{i}/run", json={"label": "draft", "variables": VARIABLES})
            if r.status_code != 422 or r.json()["error"]["code"] != "compile_error":
                refusals.problems.append(f"PUT/run {payload[:60]!r}: {r.status_code} {r.text[:200]}")
            # PATCH a block of the session: refused on the edit, or on compile and run
            r = await req("PATCH", f"/playground/sessions/{sid}/blocks/ask", json=patch)
            if r.status_code == 200:
                for action in ("compile", "run"):
                    r2 = await req("POST", f"/playground/sessions/{sid}/{action}")
                    if r2.status_code != 422:
                        refusals.problems.append(f"PATCH then {action} {payload[:60]!r}: {r2.status_code}")
                await req("DELETE", f"/playground/sessions/{sid}")
                sid = (await req("POST", f"/traces/{trace['id']}/playground/sessions")).json()["id"]
            elif r.status_code != 422:
                refusals.problems.append(f"PATCH {payload[:60]!r}: {r.status_code} {r.text[:200]}")
            refusals.timed(started, payload)

        # values through REST: literal
        r = await req("PATCH", f"/playground/sessions/{sid}/variables", json={"values": {"question": "{{ 7*7 }}"}})
        assert r.status_code == 200
        compiled = (await req("POST", f"/playground/sessions/{sid}/compile")).json()
        assert compiled["messages"][0]["content"] == "Question: {{ 7*7 }}"
        run = await req("POST", "/prompts/support/run", json={"variables": {**VARIABLES, "question": "{{ 7*7 }}"}})
        assert run.json()["trace"]["messages"][0]["content"] == "Question: {{ 7*7 }}"
        rows = (await req("GET", "/traces", params={"limit": 200})).json()["traces"]
        assert len(rows) == 2  # the seed run and the literal one: no payload ever reached a model
    refusals.check()


# -- tenants ---------------------------------------------------------------------------------------------

SECRET_OUTPUT = "ACME-CONFIDENTIAL-7f3a"
SECRET_PROMPT = "You help ACME-PRIVATE-PROMPT customers of {{ company }}."


@dataclasses.dataclass
class AcmeData:
    trace_id: str
    ingested_id: str
    session_id: str
    cursor: str


async def seed_acme(env: InProcess) -> AcmeData:
    content = {**CONTENT, "blocks": [{**CONTENT["blocks"][0], "content": SECRET_PROMPT}, CONTENT["blocks"][1]]}
    assert (await env.request("acme", "PUT", "/prompts/support", json={"content": content})).status_code == 200
    assert (await env.request("acme", "POST", "/prompts/support/publish")).status_code == 200
    r = await env.request("acme", "POST", "/prompts/support/run", json={"variables": VARIABLES})
    trace_id = r.json()["trace"]["id"]
    r = await env.request("acme", "POST", "/traces", json=trace_payload(id="acme-only", output=SECRET_OUTPUT))
    assert r.status_code == 201
    sid = (await env.request("acme", "POST", f"/traces/{trace_id}/playground/sessions")).json()["id"]
    cursor = (await env.request("acme", "GET", "/traces", params={"limit": 1})).json()["nextCursor"]
    assert cursor
    return AcmeData(trace_id, "acme-only", sid, cursor)


async def acme_view(env: InProcess, acme: AcmeData) -> list[Any]:
    out = []
    for path in ("/traces", "/prompts", "/playground/sessions", f"/playground/sessions/{acme.session_id}"):
        r = await env.request("acme", "GET", path)
        assert r.status_code == 200
        out.append(r.json())
    return out


def assert_no_acme_data(text: str, acme: AcmeData, what: Any) -> None:
    for secret in (SECRET_OUTPUT, "ACME-PRIVATE-PROMPT", "refund?"):
        assert secret not in text, f"acme's {secret!r} visible to globex via {what!r}: {text[:300]}"


async def probe_mcp_as_globex(c: Client, acme: AcmeData) -> None:
    """Every tool and resource that takes an id, aimed at acme's ids by a globex client."""
    ids = {"trace": acme.trace_id, "ingested": acme.ingested_id, "session": acme.session_id}
    uris = [
        f"traces://{acme.trace_id}",
        f"traces://{acme.ingested_id}",
        "prompts://support",
        "prompts://support/versions/1",
        f"sessions://{acme.session_id}",
    ]
    for uri in uris:
        with pytest.raises(MCPError) as info:
            await c.read_resource(uri)
        assert_no_acme_data(str(info.value), acme, uri)
    listed = await c.list_resources()
    assert listed.resources == [], "acme's traces listed for globex"
    # A cursor is sealed to its tenant: acme's is refused outright for globex, naming no acme data.
    with pytest.raises(MCPError) as refused:
        await c.list_resources(cursor=acme.cursor)
    assert refused.value.error.code == -32602
    assert_no_acme_data(str(refused.value), acme, "resources/list")

    sid, tid = ids["session"], ids["trace"]
    calls: list[tuple[str, dict[str, Any]]] = [
        ("get_trace", {"trace_id": tid}),
        ("get_trace", {"trace_id": ids["ingested"]}),
        ("diff_trace", {"trace_id": tid}),
        ("open_playground", {"trace_id": tid}),
        ("get_session", {"session_id": sid}),
        ("edit_block", {"session_id": sid, "block_id": "intro", "content": "pwned"}),
        ("update_variables", {"session_id": sid, "values": {"company": "pwned"}}),
        ("update_models", {"session_id": sid, "models": [LOCAL_MODEL]}),
        ("compile_session", {"session_id": sid}),
        ("run_session", {"session_id": sid}),
        ("diff_session", {"session_id": sid}),
        ("save_session", {"session_id": sid, "force": True}),
        ("delete_session", {"session_id": sid}),
        ("get_prompt", {"name": "support"}),
        ("get_prompt", {"name": "support", "version": 1}),
        ("publish_prompt", {"name": "support"}),
        ("publish_prompt", {"name": "support", "version": 1, "label": "staging"}),
        ("run_prompt", {"name": "support", "variables": VARIABLES}),
    ]
    for tool, args in calls:
        err = await call_error(c, tool, **args)
        assert err["code"] == "not_found", (tool, err)
        assert_no_acme_data(json.dumps(err), acme, tool)
    for tool, args in [
        ("list_traces", {}),
        ("list_traces", {"query": "CONFIDENTIAL"}),
        ("list_traces", {"cursor": acme.cursor}),
        ("list_traces", {"session_id": sid}),
        ("list_sessions", {}),
        ("list_prompts", {}),
        ("trace_stats", {"group_by": "prompt"}),
    ]:
        result = await c.call_tool(tool, args)
        text = result_text(result)
        assert_no_acme_data(text, acme, (tool, args))
        if not result.is_error:
            data = result.structured_content or {}
            assert all(not v for k, v in data.items() if k in ("traces", "sessions", "prompts", "groups")), (tool, data)


async def test_mcp_over_http_and_resources_never_cross_tenants(settings: Settings) -> None:
    with anyio.fail_after(60), live_server(settings, token_ttl=0.5) as srv:
        async with in_process(settings, "acme", "globex") as env:  # same database: seeding and checking
            acme = await seed_acme(env)
            before = await acme_view(env, acme)
            globex = env.tokens["globex"]
            for mode in ("legacy", "auto"):
                async with (
                    httpx2.AsyncClient(headers={"Authorization": f"Bearer {globex}"}, timeout=30) as http,
                    Client(streamable_http_client(srv.url + "/mcp", http_client=http), mode=mode) as c,
                ):
                    await probe_mcp_as_globex(c, acme)
            assert await acme_view(env, acme) == before


async def test_a_stdio_server_of_another_tenant_sees_nothing(settings: Settings) -> None:
    async with in_process(settings, "acme") as env:
        acme = await seed_acme(env)
        before = await acme_view(env, acme)
        async with Client(build_server(dataclasses.replace(settings, tenant="globex"))) as c:
            await probe_mcp_as_globex(c, acme)
        assert await acme_view(env, acme) == before


async def test_rest_with_own_path_and_another_tenants_ids(settings: Settings) -> None:
    """The token and the path are globex's; the ids are acme's: 404 everywhere, nothing of acme's shown."""
    from agnt_traces.http.routes import OPERATIONS

    async with in_process(settings, "acme", "globex") as env:
        acme = await seed_acme(env)
        before = await acme_view(env, acme)
        values = {"trace_id": acme.trace_id, "session_id": acme.session_id, "block_id": "intro", "name": "support"}
        bodies: dict[str, Any] = {
            "edit_block": {"content": "pwned"},
            "update_variables": {"values": {"company": "pwned"}},
            "update_models": {"models": [LOCAL_MODEL]},
            "save_session": {"force": True},
            "publish_prompt": {},
            "run_prompt": {"variables": VARIABLES},
            "pin_golden": {"traceIds": [acme.trace_id]},
            "update_golden": {"required": True},
            "run_replay": {},
            "put_gate": {"requiredPass": True},
        }
        for op in OPERATIONS:
            if op.operation_id in ("put_prompt", "ingest_traces"):
                continue  # these create globex's own records (checked below)
            path = re.sub(r"{(\w+)}", lambda m: values.get(m.group(1), "globex"), op.path.removeprefix("/tenants"))
            path = path.removeprefix("/globex")
            if op.operation_id == "unpin_golden":
                path += "?case_ids=c1"  # the case ids go in the query string of a DELETE
            r = await env.request("globex", op.method, path, json=bodies.get(op.operation_id))
            assert r.status_code in (200, 404), (op.method, path, r.status_code, r.text)
            assert_no_acme_data(r.text, acme, (op.method, path))
            if r.status_code == 200:  # list routes: globex's own (empty) data
                data = r.json()
                assert all(not v for k, v in data.items() if k in ("traces", "sessions", "prompts", "groups")), data
        # ids are per tenant: globex may use acme's names and ids for records of its own
        r = await env.request("globex", "POST", "/traces", json=trace_payload(id=acme.ingested_id, output="globex"))
        assert r.status_code == 201
        r = await env.request("globex", "PUT", "/prompts/support", json={"content": CONTENT})
        assert r.status_code == 200 and r.json()["draftRevision"] == 1
        r = await env.request("globex", "GET", "/traces", params={"query": "CONFIDENTIAL"})
        assert r.json()["traces"] == []
        assert await acme_view(env, acme) == before


# -- secrets ---------------------------------------------------------------------------------------------

API_KEY = "sk-test-SECRET-" + os.urandom(12).hex()
LOGGERS = ("", "agnt_traces", "LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "httpx", "httpcore", "openai", "mcp")


def db_bytes(db_path: str) -> bytes:
    files = [Path(db_path + suffix) for suffix in ("", "-wal", "-shm")]
    return b"".join(f.read_bytes() for f in files if f.exists())


@pytest.fixture
async def debug_logs(caplog: pytest.LogCaptureFixture) -> AsyncIterator[pytest.LogCaptureFixture]:
    """Every logger at DEBUG for the whole test — LiteLLM's too (loaded first, or it would reset them)."""
    from agnt_traces.llm import preload

    await preload()
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name or None)
    yield caplog


def openai_content(server: ModelServer, **params: Any) -> dict[str, Any]:
    model = {"provider": "openai", "name": "gpt-4o-mini", "params": {"api_base": server.openai_base, **params}}
    return {**CONTENT, "model": model}


async def test_api_keys_and_tokens_never_stored_logged_or_returned(
    settings: Settings,
    model_server: ModelServer,
    monkeypatch: pytest.MonkeyPatch,
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    seen: list[str] = []  # every response body and error text

    def keep(text: str) -> str:
        seen.append(text)
        return text

    with anyio.fail_after(90):
        async with in_process(settings, "acme") as env:
            token = env.tokens["acme"]

            async def req(method: str, path: str, **kw: Any) -> httpx2.Response:
                r = await env.request("acme", method, path, **kw)
                keep(r.text)
                assert r.status_code != 500, r.text
                return r

            # 1. the key works: the model server got it, nothing else keeps it
            model_server.expected_api_key = API_KEY
            r = await req("PUT", "/prompts/paid", json={"content": openai_content(model_server)})
            assert r.status_code == 200, r.text
            r = await req("POST", "/prompts/paid/run", json={"label": "draft", "variables": VARIABLES})
            assert r.status_code == 200, r.text
            assert API_KEY in model_server.requests[-1].headers.get("authorization", "")
            good = r.json()["trace"]["id"]

            # 2. the provider answers 401 and echoes the key it got
            model_server.expected_api_key = "sk-the-right-one-0000000000"
            r = await req("POST", "/prompts/paid/run", json={"label": "draft", "variables": VARIABLES})
            assert r.status_code == 502 and r.json()["error"]["code"] == "model_error", r.text
            bad = r.json()["error"]["details"]["traceId"]
            keep(json.dumps((await req("GET", f"/traces/{bad}")).json()))

            # 3. the same through the playground (every run recorded, errors in the run list)
            sid = (await req("POST", f"/traces/{good}/playground/sessions")).json()["id"]
            runs = (await req("POST", f"/playground/sessions/{sid}/run")).json()["runs"]
            assert runs[0]["status"] == "error"
            keep(json.dumps((await req("GET", f"/playground/sessions/{sid}/diff")).json()))
            model_server.expected_api_key = None
            model_server.script(["401"])
            runs = (await req("POST", f"/playground/sessions/{sid}/run")).json()["runs"]
            assert runs[0]["status"] == "error"

            # 4. params that try to carry a key are refused, without echoing it
            for params in (
                {"api_key": API_KEY},
                {"openai_api_key": API_KEY},
                {"aws_secret_access_key": API_KEY},
                {"extra_headers": {"Authorization": f"Bearer {API_KEY}"}},
                {"extra_body": {"api_key": API_KEY}},
                {"headers": {"x-api-key": API_KEY}},
            ):
                r = await req("PUT", "/prompts/keyed", json={"content": openai_content(model_server, **params)})
                assert r.status_code == 400, (params, r.text)
                r = await req(
                    "PATCH",
                    f"/playground/sessions/{sid}/models",
                    json={"models": [{"provider": "openai", "name": "gpt-4o-mini", "params": params}]},
                )
                assert r.status_code == 400, (params, r.text)
            assert (await req("GET", "/prompts/keyed")).status_code == 404

            # 5. a key passed where it does not belong (wrong type, unknown field) is not echoed
            await req("PUT", "/prompts/x", json={"content": {"blocks": [[["x"], API_KEY]]}})
            await req("POST", "/traces", json={"promtName": API_KEY})
            await req("POST", "/prompts/paid/run", json={"label": "draft", "variables": {"question": [API_KEY]}})

            # 6. bearer tokens: right, wrong, malformed, on another tenant's path
            wrong = "agt_wrong-" + os.urandom(8).hex()
            for headers in (
                {"Authorization": f"Bearer {wrong}"},
                {"Authorization": f"Bearer {token} {token}"},
                {"Authorization": f"Basic {token}"},
                {"Authorization": f"Bearer {token}x"},
            ):
                r = await env.client.get("/api/v1/tenants/acme/traces", headers=headers)
                keep(r.text)
                assert r.status_code == 401
            r = await env.client.get("/api/v1/tenants/globex/traces", headers=env.auth("acme"))
            keep(r.text)
            assert r.status_code == 404

        # the same over MCP (in memory): the key in params, in a wrong-typed argument, in a failed run
        async with Client(build_server(settings)) as c:
            for args in (
                {"name": "m", "content": openai_content(model_server, api_key=API_KEY)},
                {"name": "m", "content": openai_content(model_server, extra_headers={"Authorization": API_KEY})},
                {"name": [["x"], API_KEY], "content": {}},
            ):
                keep(json.dumps(await call_error(c, "upsert_prompt", **args)))
            keep(json.dumps(await call_error(c, "get_prompt", name={"a": ["b"], "key": API_KEY})))
            keep(
                json.dumps(
                    await call_error(
                        c,
                        "update_models",
                        session_id=sid,
                        models=[{"provider": "openai", "name": "x", "params": {"api_key": API_KEY}}],
                    )
                )
            )
            model_server.expected_api_key = "sk-the-right-one-0000000000"
            keep(json.dumps(await call_error(c, "run_prompt", name="paid", label="draft", variables=VARIABLES)))
            keep(json.dumps(await call(c, "list_traces", limit=200)))

    for where, text in (("responses", "\n".join(seen)), ("logs", debug_logs.text)):
        assert API_KEY not in text, f"the API key leaked into {where}"
        assert token not in text, f"the bearer token leaked into {where}"
        assert wrong not in text, f"a wrong bearer token leaked into {where}"
    for record in debug_logs.records:
        assert API_KEY not in record.getMessage() and API_KEY not in repr(record.args)
    stored = db_bytes(settings.db_path)
    assert API_KEY.encode() not in stored, "the API key is stored in the database"
    assert token.encode() not in stored and wrong.encode() not in stored, "a bearer token is stored"
    assert any(r.levelno == logging.DEBUG for r in debug_logs.records), "DEBUG logging was not captured"


# -- the server process at DEBUG --------------------------------------------------------------------------


@asynccontextmanager
async def _token_for(db: str, tenant: str) -> AsyncIterator[str]:
    async with open_app(Settings(db_path=db)) as app:
        token = new_token()
        await app.store.create_token(tenant, "test", hash_token(token))
    yield token


@pytest.fixture
def serve_http(tmp_path: Path, model_server: ModelServer) -> Iterator[tuple[str, Path, str]]:
    """``agnt-traces serve --http`` at DEBUG, stderr to a file; yields (url, stderr file, db path)."""
    db = str(tmp_path / "served.db")
    log = tmp_path / "stderr.log"
    env = {**os.environ, "AGNT_TRACES_LOG_LEVEL": "DEBUG", "OPENAI_API_KEY": API_KEY, "LITELLM_LOG": "DEBUG"}
    cmd = [sys.executable, "-m", "agnt_traces", "serve", "--http", "--port", "0", "--db", db]
    with log.open("w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
    try:
        deadline = time.monotonic() + 30
        while not (match := re.search(r"serving on (http://127\.0\.0\.1:\d+)", log.read_text())):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield match.group(1), log, db
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


async def test_served_at_debug_never_logs_tokens_or_keys(
    serve_http: tuple[str, Path, str], model_server: ModelServer
) -> None:
    url, log, db = serve_http
    async with _token_for(db, "acme") as token:
        pass
    wrong = "agt_wrong-" + os.urandom(8).hex()
    model_server.expected_api_key = "sk-the-right-one-0000000000"  # 401, echoing the key it got
    mcp_init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    mcp_headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    with anyio.fail_after(60):
        async with httpx2.AsyncClient(base_url=url + "/api/v1/tenants/acme", timeout=30) as c:
            auth = {"Authorization": f"Bearer {token}"}
            assert (await c.get("/traces", headers=auth)).status_code == 200
            assert (await c.post("/traces", json=trace_payload(), headers=auth)).status_code == 201
            r = await c.put("/prompts/paid", json={"content": openai_content(model_server)}, headers=auth)
            assert r.status_code == 200, r.text
            r = await c.post("/prompts/paid/run", json={"label": "draft", "variables": VARIABLES}, headers=auth)
            assert r.status_code == 502 and API_KEY not in r.text
            assert (await c.get(url + "/api/v1/tenants/globex/traces", headers=auth)).status_code == 404
            for headers in (
                {},
                {"Authorization": f"Bearer {wrong}"},
                {"Authorization": f"Bearer {token} extra"},
                {"Authorization": f"Basic {token}"},
            ):
                assert (await c.get("/traces", headers=headers)).status_code == 401
            r = await c.post(url + "/mcp", json=mcp_init, headers={**mcp_headers, **auth})
            assert r.status_code == 200, r.text
            r = await c.post(url + "/mcp", json=mcp_init, headers={**mcp_headers, "Authorization": f"Bearer {wrong}"})
            assert r.status_code == 401
    await anyio.sleep(0.2)  # let the last log lines reach the file
    text = log.read_text()
    assert "DEBUG" in text, "the server did not log at DEBUG"
    assert token not in text, "the bearer token is in the server's log"
    assert wrong not in text, "a wrong bearer token is in the server's log"
    assert API_KEY not in text, "the API key is in the server's log"
    assert API_KEY.encode() not in db_bytes(db) and token.encode() not in db_bytes(db)

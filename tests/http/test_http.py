"""The REST API over a real socket: uvicorn on 127.0.0.1 in a background thread, httpx2 as the client."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx2
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount, Route

from agnt_traces.app import App
from agnt_traces.config import Settings
from agnt_traces.http.routes import OPERATIONS
from factories import add_token, trace_payload
from live_http import LiveServer, live_server

pytestmark = pytest.mark.anyio

TENANT = "acme"
BODY_LIMIT = 20_000


@pytest.fixture
def http_settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, max_body_bytes=BODY_LIMIT)


@pytest.fixture
async def server(http_settings: Settings, app: App) -> AsyncIterator[LiveServer]:
    with live_server(http_settings) as srv:
        yield srv


@pytest.fixture
async def token(app: App) -> str:
    return (await add_token(app, TENANT))[0]


@pytest.fixture
async def client(server: LiveServer, token: str) -> AsyncIterator[httpx2.AsyncClient]:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(base_url=f"{server.url}/api/v1/tenants/{TENANT}", headers=headers, timeout=30) as c:
        yield c


def assert_error(response: httpx2.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] == code, body
    assert "Traceback" not in response.text
    return dict(body["error"])


PROMPT = {
    "description": "support answers",
    "content": {
        "blocks": [
            {"id": "intro", "role": "system", "content": "You help {{ company }} customers."},
            {"id": "ask", "role": "user", "content": "Question: {{ question }}"},
        ],
        "variables": [
            {"name": "company", "type": "string", "required": True},
            {"name": "question", "type": "string", "required": True},
        ],
        "model": {"provider": "agnt-local", "name": "echo"},
    },
}


# -- public routes ---------------------------------------------------------------------------------------


async def test_healthz_and_openapi_need_no_token(server: LiveServer) -> None:
    async with httpx2.AsyncClient(base_url=server.url) as c:
        health = await c.get("/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        doc = await c.get("/api/v1/openapi.json")
    assert doc.status_code == 200
    spec = doc.json()
    assert spec["openapi"].startswith("3.1")
    assert spec["components"]["schemas"]["Error"]["required"] == ["error"]
    put = spec["paths"]["/api/v1/tenants/{tenant}/prompts/{name}"]["put"]
    assert "requestBody" in put and put["responses"]["422"]
    batch = spec["paths"]["/api/v1/tenants/{tenant}/traces"]["post"]["requestBody"]["content"]["application/json"]
    refs = {s["$ref"] for s in batch["schema"]["oneOf"]}
    assert refs == {"#/components/schemas/TraceIn", "#/components/schemas/TraceBatchBody"}
    assert "promptName" in spec["components"]["schemas"]["TraceIn"]["properties"]  # camelCase bodies


def _starlette_routes(app: Starlette) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()

    def walk(routes: list[Any], prefix: str) -> None:
        for r in routes:
            if isinstance(r, Mount):
                walk(r.routes, prefix + r.path)
            elif isinstance(r, Route) and r.methods is not None:  # the MCP endpoint (all methods) is not REST
                found.update((m, prefix + r.path) for m in r.methods if m != "HEAD")

    walk(app.routes, "")
    return found


async def test_openapi_documents_every_route_and_only_those(server: LiveServer) -> None:
    async with httpx2.AsyncClient(base_url=server.url) as c:
        spec = (await c.get("/api/v1/openapi.json")).json()
    documented = {(m.upper(), path) for path, ops in spec["paths"].items() for m in ops}
    served = _starlette_routes(server.asgi)
    assert served == documented
    assert len(served) == len(OPERATIONS) + 3  # + /healthz, the document itself and OTLP's /v1/traces
    for path, ops in spec["paths"].items():
        for op in ops.values():
            declared = {p["name"] for p in op["parameters"] if p["in"] == "path"} if "parameters" in op else set()
            assert declared == set(re.findall(r"{(\w+)}", path)), path
            for status, resp in op["responses"].items():
                if status.startswith(("4", "5")):
                    assert resp["$ref"].startswith("#/components/responses/")


# -- the quick start, end to end ------------------------------------------------------------------------


async def test_quick_start_end_to_end(client: httpx2.AsyncClient) -> None:
    with anyio.fail_after(60):
        r = await client.put("/prompts/support", json=PROMPT)
        assert r.status_code == 200, r.text
        assert r.json()["draftRevision"] == 1
        r = await client.post("/prompts/support/publish", json={"note": "first"})
        assert r.status_code == 200 and r.json()["version"] == 1 and r.json()["labels"] == {"production": 1}

        r = await client.post(
            "/prompts/support/run", json={"variables": {"company": "Acme", "question": "refund?"}, "tags": ["qs"]}
        )
        assert r.status_code == 200, r.text
        trace = r.json()["trace"]
        assert trace["promptVersion"] == 1 and trace["source"] == "run" and "refund?" in trace["output"]

        rows = (await client.get("/traces", params={"tag": "qs", "prompt_name": "support"})).json()
        assert [t["id"] for t in rows["traces"]] == [trace["id"]]
        got = (await client.get(f"/traces/{trace['id']}", params={"fields": "output,variables"})).json()
        assert got == {"id": trace["id"], "output": trace["output"], "variables": trace["variables"]}
        short = (await client.get(f"/traces/{trace['id']}", params={"max_chars": 10})).json()
        assert short["output"].startswith(trace["output"][:10]) and "truncated" in short["output"]

        r = await client.post(f"/traces/{trace['id']}/playground/sessions")
        assert r.status_code == 201, r.text
        session = r.json()
        sid = session["id"]
        assert [b["id"] for b in session["blocks"]] == ["intro", "ask"]
        listed = (await client.get("/playground/sessions")).json()["sessions"]
        assert [s["id"] for s in listed] == [sid]

        r = await client.patch(
            f"/playground/sessions/{sid}/blocks/intro", json={"content": "You kindly help {{ company }} customers."}
        )
        assert r.status_code == 200, r.text
        r = await client.patch(
            f"/playground/sessions/{sid}/blocks/tone",
            json={"op": "insert", "after": "intro", "role": "system", "content": "Be brief."},
        )
        assert [b["id"] for b in r.json()["blocks"]] == ["intro", "tone", "ask"]
        r = await client.patch(f"/playground/sessions/{sid}/variables", json={"values": {"question": "where?"}})
        assert r.status_code == 200, r.text
        r = await client.patch(
            f"/playground/sessions/{sid}/models", json={"models": [{"provider": "agnt-local", "name": "echo"}]}
        )
        assert r.status_code == 200, r.text
        compiled = (await client.post(f"/playground/sessions/{sid}/compile")).json()
        assert compiled["manifest"]["system"] == "You kindly help Acme customers.\n\nBe brief."

        r = await client.post(f"/playground/sessions/{sid}/run")
        assert r.status_code == 200, r.text
        (run,) = r.json()["runs"]
        assert run["status"] == "success" and run["traceId"]
        diff = (await client.get(f"/playground/sessions/{sid}/diff")).json()
        assert diff["changed"] is True and "+You kindly help" in diff["unified"]
        assert diff["models"][0]["outputChanged"] is True

        r = await client.post(f"/playground/sessions/{sid}/save", json={})
        assert r.status_code == 200 and r.json()["draftRevision"] == 2, r.text
        r = await client.post("/prompts/support/publish", json={"note": "kinder"})
        assert r.json()["version"] == 2 and r.json()["labels"] == {"production": 2}

        versions = (await client.get("/prompts/support/versions")).json()
        assert [v["version"] for v in versions["versions"]] == [1, 2]
        v1 = (await client.get("/prompts/support", params={"version": 1})).json()
        assert v1["content"]["blocks"][0]["content"] == "You help {{ company }} customers."
        prompts = (await client.get("/prompts")).json()["prompts"]
        assert [p["name"] for p in prompts] == ["support"]
        tdiff = (await client.get(f"/traces/{trace['id']}/diff", params={"against": "production"})).json()
        assert tdiff["against"]["version"] == 2 and tdiff["changed"] is True

        playground_rows = (await client.get("/traces", params={"session_id": sid})).json()["traces"]
        assert [t["id"] for t in playground_rows] == [run["traceId"]]
        stats = (await client.get("/stats", params={"group_by": "prompt"})).json()
        assert stats["groups"][0]["count"] == 2

        r = await client.delete(f"/playground/sessions/{sid}")
        assert r.status_code == 200 and r.json()["deleted"] is True
        assert_error(await client.get(f"/playground/sessions/{sid}"), 404, "not_found")


async def test_put_accepts_the_content_itself_and_rollback_by_label(client: httpx2.AsyncClient) -> None:
    content = {**PROMPT["content"], "description": "bare"}  # type: ignore[dict-item]
    r = await client.put("/prompts/bare", json=content)
    assert r.status_code == 200 and r.json()["description"] == "bare", r.text
    await client.post("/prompts/bare/publish")
    await client.put("/prompts/bare", json={"content": {**PROMPT["content"], "tools": []}, "description": "v2"})
    await client.post("/prompts/bare/publish")
    r = await client.post("/prompts/bare/publish", json={"version": 1})  # rollback
    assert r.json()["labels"] == {"production": 1}
    assert_error(await client.put("/prompts/bare", json={"blocks": [], "bogus": 1}), 400, "invalid_argument")
    assert_error(await client.put("/prompts/Bad Name", json=PROMPT), 400, "invalid_argument")


async def test_compile_error_is_422_and_model_error_is_502(
    client: httpx2.AsyncClient, model_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    await client.put("/prompts/support", json=PROMPT)
    err = assert_error(await client.post("/prompts/support/run", json={"label": "draft"}), 422, "compile_error")
    assert "company" in err["message"]

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real")
    failing = {
        **PROMPT["content"],  # type: ignore[dict-item]
        "model": {"provider": "openai", "name": "mock-fail-400", "params": {"api_base": model_server.openai_base}},
    }
    await client.put("/prompts/failing", json={"content": failing})
    with anyio.fail_after(30):
        r = await client.post(
            "/prompts/failing/run", json={"label": "draft", "variables": {"company": "A", "question": "q"}}
        )
    err = assert_error(r, 502, "model_error")
    assert "sk-test-not-real" not in r.text
    rows = (await client.get("/traces", params={"status": "error"})).json()["traces"]
    assert len(rows) == 1  # the failed call is recorded


# -- traces ------------------------------------------------------------------------------------------------


async def test_ingest_single_batch_idempotent_and_conflict(client: httpx2.AsyncClient) -> None:
    r = await client.post("/traces", json=trace_payload(id="t-1"))
    assert r.status_code == 201 and r.json() == {"id": "t-1", "created": True}
    r = await client.post("/traces", json=trace_payload(id="t-1"))
    assert r.status_code == 200 and r.json() == {"id": "t-1", "created": False}
    err = assert_error(await client.post("/traces", json=trace_payload(id="t-1", output="other")), 409, "conflict")
    assert "t-1" in err["message"]

    batch = [trace_payload(id=f"b-{i}", output=f"o{i}", createdAt=f"2026-01-02T03:04:0{i}Z") for i in range(5)]
    r = await client.post("/traces", json={"traces": batch})
    assert r.status_code == 201 and r.json()["created"] == 5 and len(r.json()["traces"]) == 5
    assert (await client.post("/traces", json={"traces": batch})).json()["created"] == 0
    bad = {"traces": [trace_payload(), trace_payload(status="nope")]}
    r = await client.post("/traces", json=bad)  # answered per trace: the valid one is stored
    assert r.status_code == 207 and r.json()["created"] == 1 and r.json()["refused"] == 1
    assert r.json()["results"][1]["index"] == 1 and r.json()["results"][1]["error"]["code"] == "invalid_argument"
    page = (await client.get("/traces", params={"limit": 200})).json()
    assert len(page["traces"]) == 7


async def test_concurrent_single_ingests_each_get_their_own_answer(client: httpx2.AsyncClient) -> None:
    """Concurrent POSTs are written together (group commit); each still gets exactly its own answer."""
    assert (await client.post("/traces", json=trace_payload(id="taken", output="first"))).status_code == 201
    bodies = [trace_payload(output=f"n{i}") for i in range(40)]
    bodies += [trace_payload(id="taken", output="other content")]  # conflicts with the stored one
    bodies += [trace_payload(id="twice", output="same"), trace_payload(id="twice", output="same")]
    bodies += [trace_payload(id="taken", output="first")]  # the stored content again: a no-op
    bodies += [{"promtName": "typo"}]  # invalid: its own 400 only
    responses: list[httpx2.Response] = [None] * len(bodies)  # type: ignore[list-item]

    async def post(i: int) -> None:
        responses[i] = await client.post("/traces", json=bodies[i])

    async with anyio.create_task_group() as tg:
        for i in range(len(bodies)):
            tg.start_soon(post, i)
    statuses = [r.status_code for r in responses]
    assert statuses[:40] == [201] * 40
    assert statuses[40] == 409 and responses[40].json()["error"]["code"] == "conflict"
    assert sorted(statuses[41:43]) == [200, 201]
    assert statuses[43] == 200 and responses[43].json() == {"id": "taken", "created": False}
    assert statuses[44] == 400
    ids = [r.json()["id"] for r in responses[:40]]
    assert len(set(ids)) == 40
    page = (await client.get("/traces", params={"limit": 200})).json()["traces"]
    assert sorted(t["id"] for t in page) == sorted([*ids, "taken", "twice"])
    assert (await client.get("/traces/taken")).json()["output"] == "first"


async def test_batch_of_traces_created_in_the_same_millisecond(client: httpx2.AsyncClient) -> None:
    r = await client.post("/traces", json={"traces": [trace_payload(output=f"o{i}") for i in range(5)]})
    assert r.status_code == 201 and r.json()["created"] == 5


async def test_list_filters_pagination_and_bad_queries(client: httpx2.AsyncClient) -> None:
    for i in range(5):
        tags = ["a", "b"] if i % 2 else ["a"]
        await client.post("/traces", json=trace_payload(output=f"answer {i}", tags=tags, cost=0.001 * i))
    page = (await client.get("/traces", params={"tags": "a,b"})).json()
    assert len(page["traces"]) == 2
    page = (await client.get("/traces", params=[("tag", "a"), ("tag", "b")])).json()
    assert len(page["traces"]) == 2
    ids, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 2, "sort": "cost", "order": "asc"}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/traces", params=params)).json()
        ids += [t["id"] for t in page["traces"]]
        cursor = page["nextCursor"]
        if not cursor:
            break
    assert len(ids) == len(set(ids)) == 5
    assert (await client.get("/traces", params={"min_cost": "0.0025"})).json()["traces"][0]["cost"] >= 0.0025
    assert_error(await client.get("/traces", params={"limit": 201}), 400, "invalid_argument")
    assert_error(await client.get("/traces", params={"limit": "ten"}), 400, "invalid_argument")
    assert_error(await client.get("/traces", params={"since": "last tuesday"}), 400, "invalid_argument")
    err = assert_error(await client.get("/traces", params={"promptName": "x"}), 400, "invalid_argument")
    assert "promptName" in err["message"]
    assert_error(await client.get("/traces", params={"cursor": "garbage"}), 400, "invalid_argument")
    assert_error(await client.get("/traces", params=[("limit", "1"), ("limit", "2")]), 400, "invalid_argument")


async def test_unknown_resources_are_404_in_the_one_shape(client: httpx2.AsyncClient) -> None:
    err = assert_error(await client.get("/traces/01NOPE"), 404, "not_found")
    assert "01NOPE" in err["message"]
    assert_error(await client.get("/traces/01NOPE/diff"), 404, "not_found")
    assert_error(await client.post("/traces/01NOPE/playground/sessions"), 404, "not_found")
    assert_error(await client.get("/playground/sessions/nope"), 404, "not_found")
    assert_error(await client.get("/prompts/nope"), 404, "not_found")
    assert_error(await client.get("/no/such/route"), 404, "not_found")
    r = await client.delete("/traces")
    assert r.status_code == 405 and r.json()["error"]["code"] == "invalid_argument"
    assert_error(await client.get("/traces/x", params={"fields": "outptu"}), 400, "invalid_argument")


# -- bodies ------------------------------------------------------------------------------------------------


async def test_bad_json_is_400_naming_the_problem(client: httpx2.AsyncClient) -> None:
    headers = {"content-type": "application/json"}
    err = assert_error(await client.post("/traces", content=b'{"output": ', headers=headers), 400, "invalid_argument")
    assert "not valid JSON" in err["message"] and "line 1" in err["message"]
    err = assert_error(await client.post("/traces", content=b"[1, 2]", headers=headers), 400, "invalid_argument")
    assert "JSON object" in err["message"]
    assert_error(await client.post("/traces", content=b"", headers=headers), 400, "invalid_argument")
    assert_error(await client.post("/traces", content=b"\xff\xfe", headers=headers), 400, "invalid_argument")
    nan = b'{"output": "x", "metadata": {"v": NaN}}'
    err = assert_error(await client.post("/traces", content=nan, headers=headers), 400, "invalid_argument")
    assert "NaN" in err["message"]
    err = assert_error(await client.post("/traces", json={"promtName": "x"}), 400, "invalid_argument")
    assert "promtName" in err["message"]
    await client.put("/prompts/support", json=PROMPT)
    err = assert_error(await client.post("/prompts/support/publish", json={"lable": "x"}), 400, "invalid_argument")
    assert "lable" in err["message"]


async def test_body_over_the_limit_is_413(client: httpx2.AsyncClient) -> None:
    big = trace_payload(output="x" * (BODY_LIMIT + 10))
    err = assert_error(await client.post("/traces", json=big), 413, "payload_too_large")
    assert str(BODY_LIMIT) in err["message"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while streaming
        yield b'{"output": "'
        for _ in range(BODY_LIMIT // 1000 + 2):
            yield b"y" * 1000
        yield b'"}'

    r = await client.post("/traces", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in r.request.headers
    assert_error(r, 413, "payload_too_large")
    page = (await client.get("/traces")).json()
    assert page["traces"] == []  # nothing was stored
    ok = await client.post("/traces", json=trace_payload(output="z" * (BODY_LIMIT // 2)))
    assert ok.status_code == 201


async def test_unexpected_errors_are_500_without_details(
    client: httpx2.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agnt_traces.services.traces import TraceService

    async def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internals /etc/passwd")

    monkeypatch.setattr(TraceService, "list", boom)
    r = await client.get("/traces")
    err = assert_error(r, 500, "internal")
    assert "secret" not in r.text and err["details"] == {}


# -- auth --------------------------------------------------------------------------------------------------


async def test_missing_malformed_unknown_and_revoked_tokens_are_401(
    http_settings: Settings, app: App, token: str
) -> None:
    with live_server(http_settings, token_ttl=0.5) as srv:
        url = f"{srv.url}/api/v1/tenants/{TENANT}/traces"
        async with httpx2.AsyncClient() as c:
            cases: list[dict[str, str]] = [
                {},
                {"Authorization": ""},
                {"Authorization": "Basic dXNlcjpwYXNz"},
                {"Authorization": "Bearer"},
                {"Authorization": f"Bearer {token} extra"},
                {"Authorization": "Bearer agt_unknown-token"},
                {"Authorization": f"Bearer {token}x"},
                {"Authorization": "Bearer " + "a" * 5000},
            ]
            for headers in cases:
                r = await c.get(url, headers=headers)
                assert_error(r, 401, "unauthorized")
                assert r.headers["www-authenticate"].startswith("Bearer")
                assert token not in r.text
                # no tenant hint: a 401 looks the same on any tenant's path
                other = await c.get(url.replace(TENANT, "someone-else"), headers=headers)
                assert other.status_code == 401 and other.json() == r.json()

            fresh, token_id = await add_token(app, TENANT)
            good = {"Authorization": f"Bearer {fresh}"}
            assert (await c.get(url, headers=good)).status_code == 200
            assert (await c.get(url, headers={"Authorization": f"bearer  {fresh}"})).status_code == 200
            assert await app.store.revoke_token(token_id)
            start = time.monotonic()
            while (await c.get(url, headers=good)).status_code == 200:
                assert time.monotonic() - start < 2.0, "a revoked token kept working past the cache TTL"
                await anyio.sleep(0.05)
            assert_error(await c.get(url, headers=good), 401, "unauthorized")


# Sample values for every path parameter; the cross-tenant probe fills them with ids that EXIST in the
# token's own tenant, so only the tenant segment is wrong.
async def _sample_ids(client: httpx2.AsyncClient) -> dict[str, str]:
    await client.put("/prompts/support", json=PROMPT)
    await client.post("/prompts/support/publish")
    run = (await client.post("/prompts/support/run", json={"variables": {"company": "A", "question": "q"}})).json()
    tid = run["trace"]["id"]
    sid = (await client.post(f"/traces/{tid}/playground/sessions")).json()["id"]
    case_id = (await client.post("/prompts/support/golden", json={"traceIds": [tid]})).json()["cases"][0]["id"]
    replay_id = (await client.post("/prompts/support/replays")).json()["id"]
    return {
        "trace_id": tid,
        "session_id": sid,
        "block_id": "intro",
        "name": "support",
        "case_id": case_id,
        "replay_id": replay_id,
    }


async def test_every_route_answers_404_on_another_tenants_path(
    client: httpx2.AsyncClient, server: LiveServer, app: App
) -> None:
    with anyio.fail_after(60):
        ids = await _sample_ids(client)
        other_token, _ = await add_token(app, "globex")  # a real tenant with its own data
        async with httpx2.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {other_token}"}) as other:
            r = await other.post("/api/v1/tenants/globex/traces", json=trace_payload(id="globex-1"))
            assert r.status_code == 201
        before = (await client.get("/traces", params={"limit": 200})).json()
        bodies = {
            "PATCH": {"content": "x", "values": {}, "models": [{"provider": "agnt-local", "name": "echo"}]},
            "PUT": PROMPT,
            "POST": {},
        }
        probed = 0
        for op in OPERATIONS:
            for tenant in ("globex", "nobody-here"):
                path = "/api/v1" + op.path.replace("{tenant}", tenant)
                path = re.sub(r"{(\w+)}", lambda m: ids[m.group(1)], path)
                body = bodies.get(op.method)
                if op.method == "PATCH":
                    body = {k: v for k, v in bodies["PATCH"].items() if k in _patch_field(op.path)}
                r = await client.request(op.method, server.url + path, json=body)
                err = assert_error(r, 404, "not_found")
                assert err["details"] == {}
                assert err["message"] == f"no such resource: {op.method} {path}; check the path " + (
                    "(a token sees only its own tenant; /api/v1/openapi.json lists the routes)"
                )
                assert "globex-1" not in r.text
                probed += 1
        assert probed == 2 * len(OPERATIONS)
        # a path that does not exist at all gives the very same answer
        r = await client.get(server.url + "/api/v1/tenants/acme/nothing")
        assert r.json()["error"]["message"].startswith("no such resource: GET /api/v1/tenants/acme/nothing")
        after = (await client.get("/traces", params={"limit": 200})).json()
        assert after == before  # nothing ran, nothing changed
        assert (await client.get(f"/playground/sessions/{ids['session_id']}")).status_code == 200


def _patch_field(path: str) -> set[str]:
    if path.endswith("/variables"):
        return {"values"}
    if path.endswith("/models"):
        return {"models"}
    return {"content"}


async def test_tokens_of_two_tenants_never_see_each_other(server: LiveServer, app: App) -> None:
    acme, _ = await add_token(app, "acme")
    globex, _ = await add_token(app, "globex")
    async with (
        httpx2.AsyncClient(
            base_url=server.url + "/api/v1/tenants/acme", headers={"Authorization": f"Bearer {acme}"}
        ) as a,
        httpx2.AsyncClient(
            base_url=server.url + "/api/v1/tenants/globex", headers={"Authorization": f"Bearer {globex}"}
        ) as g,
    ):
        await a.post("/traces", json=trace_payload(id="same-id", output="acme secret"))
        r = await g.post("/traces", json=trace_payload(id="same-id", output="globex data"))
        assert r.status_code == 201  # ids are per tenant: no conflict, no hint
        assert (await a.get("/traces/same-id")).json()["output"] == "acme secret"
        assert (await g.get("/traces/same-id")).json()["output"] == "globex data"
        assert [t["outputPreview"] for t in (await g.get("/traces")).json()["traces"]] == ["globex data"]


async def test_tokens_are_not_logged(client: httpx2.AsyncClient, token: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    await client.get("/traces")
    await client.get("/traces", headers={"Authorization": "Bearer agt_wrong"})
    assert token not in caplog.text and "agt_wrong" not in caplog.text


def test_serve_http_prints_the_url_to_stderr(tmp_path: Any) -> None:
    import os
    import signal
    import subprocess
    import sys

    env = {**os.environ, "AGNT_TRACES_LOG_LEVEL": "warning"}
    cmd = [sys.executable, "-m", "agnt_traces", "serve", "--http", "--port", "0", "--db", str(tmp_path / "t.db")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        match = re.search(r"serving on (http://127\.0\.0\.1:(\d+))", line)
        assert match, line
        assert int(match.group(2)) > 0
        with httpx2.Client() as c:
            assert c.get(match.group(1) + "/healthz").json()["status"] == "ok"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(15)
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode in (0, 130, -signal.SIGINT)

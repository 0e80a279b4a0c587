"""The golden REST routes document their answers with the same result types as the MCP tools: each operation's
success response names a component schema, and real answers of a live server (prompt runs and replays on
the offline model ``agnt-local/echo``) validate against it with a JSON Schema 2020-12 validator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx2
import pytest
from jsonschema import Draft202012Validator

from agnt_traces.config import Settings
from factories import make_token
from live_http import LiveServer, live_server

pytestmark = pytest.mark.anyio

TENANT = "acme"
BASE = f"/api/v1/tenants/{TENANT}"
ECHO = {
    "blocks": [{"id": "ask", "role": "user", "content": "Question {{ n }}"}],
    "variables": [{"name": "n", "type": "integer", "required": True}],
    "model": {"provider": "agnt-local", "name": "echo"},
}
GOLDEN_OPERATIONS = {
    ("get", "/tenants/{tenant}/prompts/{name}/golden"): "GoldenList",
    ("post", "/tenants/{tenant}/prompts/{name}/golden"): "PinResult",
    ("delete", "/tenants/{tenant}/prompts/{name}/golden"): "UnpinResult",
    ("patch", "/tenants/{tenant}/prompts/{name}/golden/{case_id}"): "GoldenCaseView",
    ("delete", "/tenants/{tenant}/prompts/{name}/golden/{case_id}"): "UnpinResult",
    ("post", "/tenants/{tenant}/prompts/{name}/replays"): "ReplayStarted",
    ("get", "/tenants/{tenant}/prompts/{name}/replays"): "ReplayListing",
    ("get", "/tenants/{tenant}/prompts/{name}/gate"): "GateSetting",
    ("put", "/tenants/{tenant}/prompts/{name}/gate"): "GateSetting",
    ("delete", "/tenants/{tenant}/prompts/{name}/gate"): "GateSetting",
    ("get", "/tenants/{tenant}/replays/{replay_id}"): "ReplayView",
}


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[tuple[LiveServer, str]]:
    token = await make_token(settings, TENANT)
    with live_server(settings) as srv:
        yield srv, token


class Documented:
    """REST calls whose answers are validated against the schema the OpenAPI document gives their operation."""

    def __init__(self, client: httpx2.AsyncClient, spec: dict[str, Any]) -> None:
        self.client = client
        self.spec = spec
        self.validated: set[str] = set()

    async def __call__(self, method: str, path: str, template: str, **kwargs: Any) -> Any:
        reply = await self.client.request(method, BASE + path, **kwargs)
        assert reply.status_code < 300, reply.text
        op = self.spec["paths"]["/api/v1" + template][method.lower()]
        schema = op["responses"][str(reply.status_code)]["content"]["application/json"]["schema"]
        Draft202012Validator({**schema, "components": self.spec["components"]}).validate(reply.json())
        self.validated.add(schema["$ref"].rsplit("/", 1)[1])
        return reply.json()


async def test_golden_routes_answer_what_their_openapi_responses_say(server: tuple[LiveServer, str]) -> None:
    srv, token = server
    with anyio.fail_after(90):
        async with httpx2.AsyncClient(base_url=srv.url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
            spec = (await c.get("/api/v1/openapi.json")).json()
            for (method, path), model in GOLDEN_OPERATIONS.items():
                ok = spec["paths"]["/api/v1" + path][method]["responses"]
                [schema] = [r["content"]["application/json"]["schema"] for s, r in ok.items() if s.startswith("2")]
                assert schema == {"$ref": f"#/components/schemas/{model}"}, (method, path)
                Draft202012Validator.check_schema(spec["components"]["schemas"][model])
            call = Documented(c, spec)
            prompt = "/tenants/{tenant}/prompts/{name}"

            assert (await c.put(f"{BASE}/prompts/support", json={"content": ECHO})).status_code < 300
            assert (await c.post(f"{BASE}/prompts/support/publish", json={})).status_code < 300
            for n in range(3):
                assert (await c.post(f"{BASE}/prompts/support/run", json={"variables": {"n": n}})).status_code == 200
            pinned = await call(
                "POST",
                "/prompts/support/golden",
                prompt + "/golden",
                json={"filter": {"limit": 3}, "checks": [{"type": "contains", "value": "Question"}]},
            )
            case_ids = [case["id"] for case in pinned["cases"]]
            await call("GET", "/prompts/support/golden", prompt + "/golden")
            await call(
                "PATCH", f"/prompts/support/golden/{case_ids[0]}", prompt + "/golden/{case_id}", json={"required": True}
            )
            await call("GET", "/prompts/support/gate", prompt + "/gate")
            gate = await call("PUT", "/prompts/support/gate", prompt + "/gate", json={"minPassRate": 0.5})
            assert gate["gate"]["min_pass_rate"] == 0.5
            started = await call("POST", "/prompts/support/replays", prompt + "/replays", json={"trials": 2})
            while True:
                view = await call(
                    "GET",
                    f"/replays/{started['id']}",
                    "/tenants/{tenant}/replays/{replay_id}",
                    params={"wait_seconds": 20},
                )
                if view["status"] != "running":
                    break
            assert view["status"] == "passed" and view["cases"] and view["cases"][0]["trials"]
            listing = await call("GET", "/prompts/support/replays", prompt + "/replays")
            assert listing["replays"][0]["summary"] == view["summary"]
            await call("DELETE", "/prompts/support/gate", prompt + "/gate")
            await call("DELETE", f"/prompts/support/golden/{case_ids[0]}", prompt + "/golden/{case_id}")
            await call(
                "DELETE", "/prompts/support/golden", prompt + "/golden", params={"case_ids": ",".join(case_ids[1:])}
            )
    assert call.validated == set(GOLDEN_OPERATIONS.values())

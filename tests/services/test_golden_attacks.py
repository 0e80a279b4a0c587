"""Golden cases, replays and the gate under attack, over the REST API (in process) and the services:
regex bombs, oversized lists, other tenants' ids, out-of-range waits, hostile schemas."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from agnt_traces.config import Settings
from golden_helpers import content_of, model_of, variables
from http_helpers import InProcess, check_error_body, in_process
from modelserver import ModelServer

pytestmark = [pytest.mark.anyio, pytest.mark.both_stores]


@pytest.fixture
async def env(settings: Settings, model_server: ModelServer) -> AsyncIterator[InProcess]:
    async with in_process(settings, "acme", "globex") as e:
        yield e


async def _traces(env: InProcess, server: ModelServer, tenant: str, n: int, content: dict[str, Any]) -> list[str]:
    assert (await env.request(tenant, "PUT", "/prompts/support", json=content)).status_code == 200
    assert (await env.request(tenant, "POST", "/prompts/support/publish")).status_code == 200
    ids = []
    for i in range(n):
        r = await env.request(tenant, "POST", "/prompts/support/run", json={"variables": variables(i)})
        assert r.status_code == 200, r.text
        ids.append(r.json()["trace"]["id"])
    return ids


async def _wait(env: InProcess, tenant: str, replay_id: str) -> dict[str, Any]:
    with anyio.fail_after(60):
        while True:
            r = await env.request(tenant, "GET", f"/replays/{replay_id}", params={"wait_seconds": 10})
            assert r.status_code == 200, r.text
            if r.json()["status"] != "running":
                return r.json()  # type: ignore[no-any-return]


async def test_regex_bomb_fails_its_check_in_bounded_time(env: InProcess, model_server: ModelServer) -> None:
    bomb_content = {
        "blocks": [{"id": "ask", "role": "user", "content": "{{ question }}"}],
        "variables": [{"name": "question", "type": "string", "required": True}],
        "model": model_of(model_server),
    }
    await env.request("acme", "PUT", "/prompts/support", json=bomb_content)
    await env.request("acme", "POST", "/prompts/support/publish")
    ids = []
    for _ in range(3):
        r = await env.request("acme", "POST", "/prompts/support/run", json={"variables": {"question": "a" * 43 + "!"}})
        ids.append(r.json()["trace"]["id"])
    r = await env.request(
        "acme",
        "POST",
        "/prompts/support/golden",
        json={"traceIds": ids, "required": True, "checks": [{"type": "regex", "value": "(a|aa)+$"}]},
    )
    assert r.status_code == 201, r.text
    started = time.monotonic()
    r = await env.request("acme", "POST", "/prompts/support/replays", json={"fresh": True})
    assert r.status_code == 202
    report = await _wait(env, "acme", r.json()["id"])
    assert time.monotonic() - started < 20
    assert report["status"] == "failed"
    details = [c["detail"] for case in report["cases"] for c in case["checks"]]
    assert all("took longer" in d for d in details), details
    # The server still answers quickly afterwards.
    with anyio.fail_after(5):
        assert (await env.request("acme", "GET", "/prompts/support/golden")).status_code == 200


@pytest.mark.parametrize(
    "check",
    [
        {"type": "regex", "value": "(" * 600},
        {"type": "regex", "value": "(unclosed"},
        {"type": "json_schema", "value": {"type": "string", "pattern": "(a|aa)+$"}},
        {"type": "json_schema", "value": {"$ref": "http://127.0.0.1:1/schema.json"}},
        {"type": "json_schema", "value": {"type": "nonsense"}},
        {"type": "contains", "value": "x" * 5000},
        {"type": "max_cost", "value": -1},
        {"type": "max_tokens", "value": 1.5},
        {"type": "shell", "value": "rm -rf /"},
    ],
)
async def test_hostile_checks_are_refused(env: InProcess, model_server: ModelServer, check: dict[str, Any]) -> None:
    ids = await _traces(env, model_server, "acme", 1, content_of(model_server))
    r = await env.request("acme", "POST", "/prompts/support/golden", json={"traceIds": ids, "checks": [check]})
    err = check_error_body(r.json())
    assert r.status_code == 400 and err["code"] == "invalid_argument"
    assert err["details"]["field"] == "checks[0]"
    listed = (await env.request("acme", "GET", "/prompts/support/golden")).json()
    assert listed["cases"] == []


async def test_huge_and_foreign_trace_id_lists(env: InProcess, model_server: ModelServer) -> None:
    mine = await _traces(env, model_server, "acme", 2, content_of(model_server))
    theirs = await _traces(env, model_server, "globex", 1, content_of(model_server))
    r = await env.request("acme", "POST", "/prompts/support/golden", json={"traceIds": mine * 300})
    assert r.status_code == 400 and check_error_body(r.json())["code"] == "invalid_argument"
    r = await env.request("acme", "POST", "/prompts/support/golden", json={"traceIds": ["x" * 100_000]})
    assert r.status_code in (400, 404, 413)
    r = await env.request("acme", "POST", "/prompts/support/golden", json={"traceIds": [*mine, *theirs]})
    err = check_error_body(r.json())
    assert r.status_code == 404 and err["details"]["missing"] == theirs
    assert (await env.request("acme", "GET", "/prompts/support/golden")).json()["cases"] == []  # all or nothing
    r = await env.request("acme", "POST", "/prompts/support/golden", json={"filter": {"limit": 100_000}})
    assert r.status_code == 400
    r = await env.request("acme", "POST", "/prompts/support/golden", json={"filter": {"prompt_name": "other"}})
    assert r.status_code == 400


async def test_other_tenants_cases_replays_and_gates_are_404(env: InProcess, model_server: ModelServer) -> None:
    theirs = await _traces(env, model_server, "globex", 2, content_of(model_server))
    await _traces(env, model_server, "acme", 1, content_of(model_server))
    case_id = (await env.request("globex", "POST", "/prompts/support/golden", json={"traceIds": theirs})).json()[
        "cases"
    ][0]["id"]
    replay_id = (await env.request("globex", "POST", "/prompts/support/replays")).json()["id"]
    await _wait(env, "globex", replay_id)

    assert (await env.request("acme", "GET", f"/replays/{replay_id}")).status_code == 404
    r = await env.request("acme", "PATCH", f"/prompts/support/golden/{case_id}", json={"required": True})
    assert r.status_code == 404
    r = await env.request("acme", "DELETE", f"/prompts/support/golden/{case_id}")
    assert r.json()["removed"] == 0
    assert len((await env.request("globex", "GET", "/prompts/support/golden")).json()["cases"]) == 2
    r = await env.request("acme", "POST", "/prompts/support/replays", json={"caseIds": [case_id]})
    assert r.status_code == 404
    # A token of one tenant on the other's path: the same 404 as a path that does not exist.
    r = await env.client.get(f"/api/v1/tenants/globex/replays/{replay_id}", headers=env.auth("acme"))
    assert r.status_code == 404


@pytest.mark.parametrize("wait", ["-1", "51", "nan", "inf", "1e9", "soon"])
async def test_wait_seconds_out_of_range(env: InProcess, model_server: ModelServer, wait: str) -> None:
    ids = await _traces(env, model_server, "acme", 1, content_of(model_server))
    await env.request("acme", "POST", "/prompts/support/golden", json={"traceIds": ids})
    replay_id = (await env.request("acme", "POST", "/prompts/support/replays")).json()["id"]
    with anyio.fail_after(5):
        r = await env.request("acme", "GET", f"/replays/{replay_id}", params={"wait_seconds": wait})
    assert r.status_code == 400 and check_error_body(r.json())["details"]["field"] == "wait_seconds"
    await _wait(env, "acme", replay_id)


async def test_gate_over_rest_with_override_recorded(env: InProcess, model_server: ModelServer) -> None:
    ids = await _traces(env, model_server, "acme", 3, content_of(model_server))
    await env.request(
        "acme",
        "POST",
        "/prompts/support/golden",
        json={"traceIds": ids, "required": True, "checks": [{"type": "contains", "value": "Kind regards"}]},
    )
    r = await env.request("acme", "PUT", "/prompts/support/gate", json={"maxCostIncrease": 0.5})
    assert r.status_code == 200 and r.json()["gate"]["max_cost_increase"] == 0.5
    await env.request("acme", "PUT", "/prompts/support", json=content_of(model_server, with_signoff=False))
    r = await env.request("acme", "POST", "/prompts/support/publish")
    assert r.status_code == 409 and "no passing replay" in r.json()["error"]["message"]
    r = await env.request("acme", "POST", "/prompts/support/publish", json={"runGate": True})
    err = check_error_body(r.json())
    assert r.status_code == 409 and err["details"]["failures"] and err["details"]["cases"][0]["regression"]
    r = await env.request(
        "acme", "POST", "/prompts/support/publish", json={"overrideReason": "hotfix approved by on-call", "note": "v2"}
    )
    assert r.status_code == 200, r.text
    versions = (await env.request("acme", "GET", "/prompts/support")).json()
    assert versions["versions"][-1]["gate"]["override"] == "hotfix approved by on-call"
    assert "gate overridden: hotfix approved by on-call" in versions["history"][-1]["note"]
    listed = (await env.request("acme", "GET", "/prompts/support/replays")).json()["replays"]
    assert listed and listed[0]["status"] == "failed"
    assert (await env.request("acme", "DELETE", "/prompts/support/gate")).json()["gate"] is None

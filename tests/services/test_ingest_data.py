"""Ingest keeps what clients send: an error without details, a trace without a duration, a batch with one
bad trace, a trace without a cost. Each used to be refused, lost, or stored as something it was not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agnt_traces.app import App, open_app
from agnt_traces.config import Settings
from agnt_traces.ids import ms_to_rfc3339
from agnt_traces.models import NO_ERROR_DETAILS
from agnt_traces.services.queries import StatsQuery, TraceQuery
from factories import trace_payload
from http_helpers import check_error_body, in_process

pytestmark = pytest.mark.anyio

H = 3_600_000
T0 = 1_790_000_000_000 // H * H  # an hour boundary
SRC = str(Path(__file__).resolve().parents[2] / "src")


def without(payload: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k not in keys}


# -- 1. status "error" without an error object -------------------------------------------------------------


async def test_an_error_trace_without_details_is_stored_and_says_so(settings: Settings) -> None:
    """The seed's POST body with status "error" and no error object was answered 400: the failure was lost."""
    body = trace_payload(status="error", output=None)
    async with in_process(settings, "acme") as env:
        r = await env.request("acme", "POST", "/traces", json=body)
        assert r.status_code == 201, r.text
        stored = (await env.request("acme", "GET", f"/traces/{r.json()['id']}")).json()
    assert stored["status"] == "error"
    assert stored["error"] == {"type": "unknown", "message": NO_ERROR_DETAILS}
    assert "without error details" in stored["error"]["message"]


async def test_an_error_trace_with_details_keeps_them_and_success_with_error_is_still_refused(app: App) -> None:
    sent = {"type": "RateLimitError", "message": "slow down"}
    result = await app.traces.ingest("default", trace_payload(status="error", error=sent))
    assert (await app.traces.get("default", result.id)).error.model_dump() == sent  # type: ignore[union-attr]
    from agnt_traces.errors import InvalidArgument

    with pytest.raises(InvalidArgument):
        await app.traces.ingest("default", trace_payload(status="success", error=sent))


# -- 3. a batch answers per trace ----------------------------------------------------------------------------


async def test_one_invalid_trace_no_longer_sinks_its_batch(settings: Settings) -> None:
    batch = [
        trace_payload(id="ok-0", output="first"),
        trace_payload(tags=["x" * 200]),  # a tag over 128 characters
        trace_payload(id="ok-2", output="third"),
        trace_payload(status="nope"),
        trace_payload(id="ok-0", output="first"),  # the same content again inside the batch: a no-op
    ]
    async with in_process(settings, "acme") as env:
        r = await env.request("acme", "POST", "/traces", json={"traces": batch})
        assert r.status_code == 207, r.text
        body = r.json()
        stored = (await env.request("acme", "GET", "/traces", params={"limit": 50})).json()["traces"]
    assert body["created"] == 2 and body["refused"] == 2
    results = body["results"]
    assert [res["index"] for res in results] == [0, 1, 2, 3, 4]
    assert results[0] == {"index": 0, "id": "ok-0", "created": True}
    assert results[2] == {"index": 2, "id": "ok-2", "created": True}
    assert results[4] == {"index": 4, "id": "ok-0", "created": False}
    for bad in (results[1], results[3]):
        err = check_error_body({"error": bad["error"]})
        assert err["code"] == "invalid_argument"
    assert "tags" in results[1]["error"]["message"]
    assert "x" * 200 not in json.dumps(results[1])  # the refused value is not echoed back
    assert sorted(t["id"] for t in stored) == ["ok-0", "ok-2"]


async def test_a_conflicting_trace_is_refused_alone(settings: Settings) -> None:
    async with in_process(settings, "acme") as env:
        assert (await env.request("acme", "POST", "/traces", json=trace_payload(id="taken"))).status_code == 201
        batch = [trace_payload(id="new-1"), trace_payload(id="taken", output="other"), trace_payload(id="new-2")]
        r = await env.request("acme", "POST", "/traces", json={"traces": batch})
        assert r.status_code == 207, r.text
        results = r.json()["results"]
        assert results[1]["error"]["code"] == "conflict" and results[1]["index"] == 1
        assert [results[0]["id"], results[2]["id"]] == ["new-1", "new-2"]
        taken = (await env.request("acme", "GET", "/traces/taken")).json()
    assert taken["output"] == trace_payload()["output"]  # never overwritten


async def test_an_all_valid_batch_keeps_its_answer(settings: Settings) -> None:
    batch = [trace_payload(id=f"b-{i}", output=f"o{i}") for i in range(3)]
    async with in_process(settings, "acme") as env:
        r = await env.request("acme", "POST", "/traces", json={"traces": batch})
        assert r.status_code == 201
        assert r.json() == {"traces": [{"id": f"b-{i}", "created": True} for i in range(3)], "created": 3}
        again = await env.request("acme", "POST", "/traces", json={"traces": batch})
        assert again.status_code == 200 and again.json()["created"] == 0
        too_many = await env.request("acme", "POST", "/traces", json={"traces": [trace_payload()] * 1001})
        assert too_many.status_code == 400  # the batch as a whole is still refused when it is too big
        doc = (await env.client.get("/api/v1/openapi.json")).json()
    responses = doc["paths"]["/api/v1/tenants/{tenant}/traces"]["post"]["responses"]
    assert "207" in responses


# -- 5. unknown duration ------------------------------------------------------------------------------------


async def test_a_trace_without_duration_has_an_unknown_duration(settings: Settings) -> None:
    async with in_process(settings, "acme") as env:
        r = await env.request("acme", "POST", "/traces", json=without(trace_payload(id="nodur"), "duration"))
        assert r.status_code == 201
        one = (await env.request("acme", "GET", "/traces/nodur")).json()
        rows = (await env.request("acme", "GET", "/traces")).json()["traces"]
    assert one["duration"] is None
    assert rows[0]["duration"] is None


async def test_unknown_durations_sort_like_nulls_and_never_match_min_duration(app: App) -> None:
    for i, duration in enumerate([0.5, None, 2.0, None, 0.0]):
        payload = trace_payload(id=f"t{i}", output=f"o{i}")
        await app.traces.ingest("default", payload if duration is not None else without(payload, "duration"))
        if duration is not None:
            payload["duration"] = duration
            await app.traces.ingest("default", {**payload, "id": f"k{i}"})

    async def ids(**query: Any) -> list[str]:
        out, cursor = [], None
        while True:  # one row per page: the cursor must walk across unknown durations too
            page = (await app.traces.list("default", TraceQuery(limit=1, cursor=cursor, **query))).render()
            out += [(r["id"], r["duration"]) for r in page["traces"]]
            cursor = page["nextCursor"]
            if cursor is None:
                return out  # type: ignore[return-value]

    desc = await ids(sort="duration", order="desc")
    asc = await ids(sort="duration", order="asc")
    durations_desc = [d for _, d in desc]
    assert durations_desc[-2:] == [None, None] and None not in durations_desc[:-2]  # last, as NULLs
    assert [d for _, d in asc][:2] == [None, None]  # first, as NULLs
    assert len(desc) == len(asc) == len({i for i, _ in desc})
    at_least_zero = await ids(min_duration=0)
    assert all(d is not None for _, d in at_least_zero)
    assert {i for i, _ in at_least_zero} == {i for i, d in desc if d is not None}


async def test_stats_percentiles_are_over_known_durations_only(app: App) -> None:
    """Unknown durations used to be 0.0: three of five traces without one made the p50 0.0."""
    known = [1.0, 2.0]
    payloads = []
    for hour in (0, 1, 2):  # roll-up hours and the partial hours at the window's edges
        for i in range(5):
            p = trace_payload(output=f"h{hour}-{i}", createdAt=ms_to_rfc3339(T0 + hour * H + 1000 + i))
            if i < len(known):
                p["duration"] = known[i]
            else:
                p.pop("duration")
            payloads.append(p)
    await app.traces.ingest_many("default", payloads)
    for since, until in [(None, None), (T0 + H // 2, T0 + 3 * H), (T0 + 100, T0 + 200_000)]:
        q = StatsQuery(since=ms_to_rfc3339(since) if since else None, until=ms_to_rfc3339(until) if until else None)
        (group,) = (await app.traces.stats("default", q)).render()["groups"]
        assert group["count"] in (15, 10, 5)  # every trace is counted...
        assert group["p50Duration"] == pytest.approx(1.0, rel=0.025)  # ...but only known durations are ranked
        assert group["p95Duration"] == pytest.approx(2.0, rel=0.025)


async def test_only_unknown_durations_give_no_percentile(app: App) -> None:
    await app.traces.ingest("default", without(trace_payload(), "duration"))
    (group,) = (await app.traces.stats("default", StatsQuery())).render()["groups"]
    assert group["count"] == 1 and group["p50Duration"] is None and group["p95Duration"] is None


async def test_reposting_a_trace_without_duration_stays_idempotent(app: App) -> None:
    body = without(trace_payload(id="same", cost=None), "duration")
    assert (await app.traces.ingest("default", body)).created is True
    assert (await app.traces.ingest("default", body)).render() == {"id": "same", "created": False}


# -- 5. cost estimated from the price map --------------------------------------------------------------------


async def test_a_missing_cost_is_estimated_from_the_price_map_and_marked(app: App) -> None:
    body = trace_payload(id="priced", cost=None, inputTokens=1000, outputTokens=500)
    await app.traces.ingest("default", body)
    trace = await app.traces.get("default", "priced")
    # gpt-4o-mini in LiteLLM's bundled map: $0.15 / M input tokens, $0.60 / M output tokens
    assert trace.cost == pytest.approx(1000 * 0.15e-6 + 500 * 0.60e-6)
    assert trace.metadata == {"costEstimated": True}


async def test_a_reported_cost_or_an_unknown_model_is_left_alone(app: App) -> None:
    await app.traces.ingest("default", trace_payload(id="reported", cost=0.5))
    await app.traces.ingest("default", trace_payload(id="unpriced", cost=None, model={"provider": "acme", "name": "x"}))
    reported, unpriced = [await app.traces.get("default", i) for i in ("reported", "unpriced")]
    assert reported.cost == 0.5 and "costEstimated" not in reported.metadata
    assert unpriced.cost is None and "costEstimated" not in unpriced.metadata


async def test_a_bare_name_of_another_provider_is_not_priced(app: App) -> None:
    await app.traces.ingest(
        "default", trace_payload(id="other", cost=None, model={"provider": "anthropic", "name": "gpt-4o-mini"})
    )
    assert (await app.traces.get("default", "other")).cost is None


async def test_the_users_price_override_comes_first(tmp_path: Path, db_path: str) -> None:
    settings = Settings(db_path=db_path, price_overrides={"openai/gpt-4o-mini": {"input_cost_per_token": 1.0}})
    async with open_app(settings) as app:
        await app.traces.ingest("default", trace_payload(id="o", cost=None, inputTokens=3, outputTokens=2))
        trace = await app.traces.get("default", "o")
    assert trace.cost == 3.0 and trace.metadata["costEstimated"] is True


def test_estimating_a_cost_never_imports_litellm(tmp_path: Path) -> None:
    """Importing litellm takes 3-4 s: the ingest path reads the bundled price file instead."""
    script = tmp_path / "ingest.py"
    script.write_text(
        "import asyncio, json, sys\n"
        "from agnt_traces.app import open_app\n"
        "from agnt_traces.config import Settings\n"
        "async def main():\n"
        f"    async with open_app(Settings(db_path={str(tmp_path / 't.db')!r})) as app:\n"
        "        model = {'provider': 'openai', 'name': 'gpt-4o-mini'}\n"
        "        body = {'inputTokens': 1000, 'outputTokens': 0, 'model': model}\n"
        "        r = await app.traces.ingest('default', body)\n"
        "        t = await app.traces.get('default', r.id)\n"
        "    print(json.dumps({'cost': t.cost, 'litellm': 'litellm' in sys.modules}))\n"
        "asyncio.run(main())\n"
    )
    env = {**os.environ, "PYTHONPATH": SRC}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result == {"cost": pytest.approx(1000 * 0.15e-6), "litellm": False}

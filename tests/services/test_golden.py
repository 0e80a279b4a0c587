"""Golden cases, replays and the gate through the services, on the local model server."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from agnt_traces.app import App
from agnt_traces.errors import Conflict, InvalidArgument, NotFound
from golden_helpers import PHRASE, content_of, variables
from modelserver import ModelServer

pytestmark = [pytest.mark.anyio, pytest.mark.both_stores]

CHECKS = [{"type": "contains", "value": PHRASE}]


async def _setup(app: App, server: ModelServer, n: int = 5, **params: Any) -> list[str]:
    await app.prompts.upsert("default", "support", content_of(server, **params))
    await app.prompts.publish("default", "support")
    ids = []
    for i in range(n):
        out = await app.prompts.run("default", "support", variables=variables(i))
        ids.append(out["trace"]["id"])
    return ids


async def _replay(app: App, **kwargs: Any) -> dict[str, Any]:
    started = await app.golden.run("default", "support", **kwargs)
    assert started.status == "running"
    with anyio.fail_after(60):
        while True:
            view = await app.golden.get("default", started.id, wait_seconds=5)
            if view.status != "running":
                return view.render()


async def test_break_replay_gate_fix_publish(app: App, model_server: ModelServer) -> None:
    ids = await _setup(app, model_server)
    pinned = await app.golden.pin("default", "support", trace_ids=ids, required=True, checks=CHECKS)
    assert [c.trace_id for c in pinned.cases] == ids
    await app.golden.set_gate("default", "support", {"required_pass": True})

    await app.prompts.upsert("default", "support", content_of(model_server, with_signoff=False))
    broken = await _replay(app)
    assert broken["status"] == "failed"
    assert broken["summary"]["regressions"] == 5 and broken["summary"]["failed"] == 5
    assert all(c["regression"] and "-echo: Answer question" in c["diff"]["unified"] for c in broken["cases"])
    replay_traces = await app.traces.get("default", broken["cases"][0]["traceId"])
    assert replay_traces.source == "replay" and replay_traces.metadata["replayId"] == broken["id"]
    with pytest.raises(Conflict) as refused:
        await app.golden.publish("default", "support")
    assert refused.value.details["replayId"] == broken["id"]
    assert refused.value.details["cases"] and "diff" in refused.value.details["cases"][0]

    await app.prompts.upsert("default", "support", content_of(model_server, with_signoff=True, temperature=0.5))
    model_server.reset()
    fixed = await _replay(app)
    assert fixed["status"] == "passed", fixed
    assert fixed["summary"]["modelCalls"] == 5 and len(model_server.requests) == 5
    published = await app.golden.publish("default", "support")
    assert published["version"] == 2 and published["gate"]["replayId"] == fixed["id"]
    got = await app.prompts.get("default", "support")
    assert got["versions"][1]["gate"]["replayId"] == fixed["id"]

    model_server.reset()
    again = await _replay(app)
    assert again["status"] == "passed"
    assert again["summary"]["modelCalls"] == 0 and again["summary"]["cached"] == 5
    assert model_server.requests == []
    cached = await app.traces.get("default", again["cases"][0]["traceId"])
    assert cached.metadata["cached"] is True and cached.cost == 0


async def test_budget_stops_before_the_crossing_call(app: App, model_server: ModelServer) -> None:
    ids = await _setup(app, model_server, n=6)
    await app.golden.pin("default", "support", trace_ids=ids, checks=CHECKS)
    one_call = (await app.traces.get("default", ids[0])).cost
    assert one_call
    model_server.reset()
    budget = one_call * 4  # room for a few calls (the estimate counts tokens its own way), never all six
    view = await _replay(app, budget_usd=budget, fresh=True)
    assert view["status"] == "error"
    details = view["error"]["details"]
    assert details["field"] == "budget_usd" and details["limitUsd"] == pytest.approx(budget)
    # The refused call was refused on its estimate: made, it would have crossed the limit.
    assert details["spentUsd"] + details["estimateUsd"] > budget
    made = len(model_server.requests)
    assert 1 <= made < 6 and view["summary"]["modelCalls"] == made
    assert view["summary"]["cost"] <= budget
    assert view["summary"]["stopped"] == "budget"


async def test_pin_refuses_foreign_and_missing(app: App, model_server: ModelServer) -> None:
    ids = await _setup(app, model_server, n=1)
    with pytest.raises(NotFound):
        await app.golden.pin("other", "support", trace_ids=ids)
    await app.prompts.upsert("other", "support", content_of(model_server))
    with pytest.raises(NotFound) as missing:
        await app.golden.pin("other", "support", trace_ids=ids)
    assert missing.value.details["missing"] == ids
    with pytest.raises(InvalidArgument):
        await app.golden.pin("default", "support", trace_ids=["x"] * 501)
    with pytest.raises(InvalidArgument):
        await app.golden.pin("default", "support", trace_ids=ids, checks=[{"type": "regex", "value": "("}])


async def test_playground_reuses_identical_calls_and_keeps_its_budget(app: App, model_server: ModelServer) -> None:
    ids = await _setup(app, model_server, n=1)
    session = (await app.playground.open("default", ids[0])).render()
    model_server.reset()
    first = ((await app.playground.run("default", session["id"])).render())["runs"][0]
    assert first["status"] == "success" and not first["cached"] and len(model_server.requests) == 1
    again = ((await app.playground.run("default", session["id"])).render())["runs"][0]
    assert again["cached"] and again["cost"] == 0 and again["output"] == first["output"]
    assert len(model_server.requests) == 1  # answered from the recorded call
    fresh = ((await app.playground.run("default", session["id"], fresh=True)).render())["runs"][0]
    assert not fresh["cached"] and len(model_server.requests) == 2

    app.settings.session_budget_usd = first["cost"] * 2.5  # spent: two real calls; the third would cross it
    with pytest.raises(InvalidArgument) as refused:
        (await app.playground.run("default", session["id"], fresh=True)).render()
    assert refused.value.details["limitUsd"] == pytest.approx(first["cost"] * 2.5)
    assert refused.value.details["spentUsd"] == pytest.approx(first["cost"] * 2)
    assert len(model_server.requests) == 2  # refused before the call
    cached = ((await app.playground.run("default", session["id"])).render())["runs"][0]
    assert cached["cached"]  # a cached answer costs nothing, so the limit does not stop it


async def test_a_replay_interrupted_by_a_restart_is_marked_error(settings: Any) -> None:
    import socket

    from agnt_traces.app import open_app
    from agnt_traces.golden_models import ReplayRecord

    async with open_app(settings) as first:
        await first.prompts.upsert(
            "default", "support", {"blocks": [], "model": {"provider": "agnt-local", "name": "echo"}}
        )
        now = 1_700_000_000_000
        for rid, owner in (("dead", f"{socket.gethostname()}:999999999:x"), ("elsewhere", "other-host:1:x")):
            await first.store.save_replay(
                "default",
                ReplayRecord(
                    id=rid,
                    prompt_name="support",
                    etag="e",
                    status="running",
                    owner=owner,
                    created_at=now,
                    updated_at=10**13,
                ),
            )
    async with open_app(settings) as second:
        dead = await second.store.get_replay("default", "dead")  # marked at start, before anyone asks
        assert (
            dead is not None and dead.status == "error" and dead.error is not None and "restart" in dead.error.message
        )
        assert (await second.golden.get("default", "dead")).render()["status"] == "error"
        # Another host's replay that is still being touched is left running.
        assert (await second.store.get_replay("default", "elsewhere")).status == "running"  # type: ignore[union-attr]

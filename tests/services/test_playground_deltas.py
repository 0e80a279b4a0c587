"""A session's diff reports token deltas as whole numbers, as clients have always read them."""

from __future__ import annotations

import json

import pytest

from agnt_traces.app import App
from factories import trace_payload

pytestmark = pytest.mark.anyio


async def test_token_deltas_are_integers_and_cost_deltas_numbers(app: App) -> None:
    created = await app.traces.ingest(
        "default",
        trace_payload(
            messages=[{"role": "user", "content": "Where is my refund?"}],
            model={"provider": "agnt-local", "name": "echo"},
            inputTokens=3,
            outputTokens=2,
        ),
    )
    session = await app.playground.open("default", created.id)
    await app.playground.run("default", session.id)
    diff = (await app.playground.diff("default", session.id)).render()
    deltas = [m["deltas"] for m in diff["models"]]
    assert deltas
    for d in deltas:
        for key in ("inputTokens", "outputTokens", "totalTokens"):
            assert d[key] is None or type(d[key]) is int, (key, d[key])
    text = json.dumps(diff)
    assert all(type(d[k]) is int for d in deltas for k in ("inputTokens", "outputTokens", "totalTokens"))
    assert '.0, "cost"' not in text

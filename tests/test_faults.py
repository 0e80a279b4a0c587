"""Faults that must be reported as what they are, never lose acknowledged work, never become an opaque 500:
a model reporting absurd usage, the database file deleted while serving, a full disk, a bad prompts folder."""

from __future__ import annotations

import math
from typing import Any

import anyio
import pytest

from agnt_traces.app import App
from agnt_traces.config import Settings
from agnt_traces.services.runner import checked_usage
from http_helpers import check_error_body, in_process
from modelserver import ModelServer, expected_usage

pytestmark = pytest.mark.anyio

TENANT = "acme"


# -- absurd usage from the model ------------------------------------------------------------------------


def prompt(server: ModelServer) -> dict[str, Any]:
    return {
        "blocks": [{"id": "ask", "role": "user", "content": "how are refunds issued"}],
        "model": {"provider": "openai", "name": "gpt-4o-mini", "params": {"api_base": server.openai_base}},
    }


@pytest.mark.parametrize(
    ("reported", "refused"),
    [
        ({"prompt_tokens": -5}, {"inputTokens", "cost"}),
        ({"prompt_tokens": 10**30}, {"inputTokens", "cost"}),
        ({"completion_tokens": -1, "total_tokens": -7}, {"outputTokens", "totalTokens", "cost"}),
        ({"total_tokens": -1}, {"totalTokens"}),
    ],
)
async def test_absurd_usage_is_recorded_refused_and_flagged(
    settings: Settings, model_server: ModelServer, reported: dict[str, Any], refused: set[str]
) -> None:
    model_server.usage_override = reported
    async with in_process(settings, TENANT) as env:
        put = await env.request(TENANT, "PUT", "/prompts/p", json={"content": prompt(model_server)})
        assert put.status_code == 200
        with anyio.fail_after(30):
            ran = await env.request(TENANT, "POST", "/prompts/p/run", json={"label": "draft"})
        assert ran.status_code == 200, ran.text  # today: 500 and no trace for 10^30
        trace = ran.json()["trace"]
        (req,) = model_server.requests
        true_in, true_out = expected_usage(req.body)
        flagged = trace["metadata"]["invalidUsage"]
        assert set(flagged) == refused
        for field in ("inputTokens", "outputTokens", "totalTokens"):
            assert isinstance(trace[field], int) and 0 <= trace[field] <= 10**12, (field, trace[field])
        if "inputTokens" in refused:
            assert trace["inputTokens"] == 0 and flagged["inputTokens"] == repr(reported["prompt_tokens"])[:40]
        else:
            assert trace["inputTokens"] == true_in
        if "outputTokens" not in refused:
            assert trace["outputTokens"] == true_out
        if "cost" in refused:
            assert trace["cost"] is None  # a cost computed from refused counts is unknown, not a number
        else:
            assert trace["cost"] is not None and trace["cost"] > 0
        # Recorded, and readable back as it was returned.
        stored = await env.request(TENANT, "GET", f"/traces/{trace['id']}")
        assert stored.status_code == 200 and stored.json() == trace
        stats = await env.request(TENANT, "GET", "/stats")
        assert stats.status_code == 200
        (group,) = stats.json()["groups"]
        assert group["count"] == 1 and group["inputTokens"] >= 0 and group["totalTokens"] >= 0


def test_checked_usage_refuses_each_kind_of_absurd_number() -> None:
    ok = checked_usage(10, 5, 15, 0.25)
    assert (ok.input_tokens, ok.output_tokens, ok.total_tokens, ok.cost, ok.invalid) == (10, 5, 15, 0.25, {})
    for cost in (math.nan, math.inf, -0.01, 1e7, "12", True):
        got = checked_usage(10, 5, 15, cost)
        assert got.cost is None and set(got.invalid) == {"cost"}, cost
    for tokens in (-1, 10**13, 2.5, math.nan, "7", None, True):
        got = checked_usage(tokens, 5, 15, 0.1)
        assert got.input_tokens == 0 and got.cost is None and {"inputTokens", "cost"} <= set(got.invalid), tokens
    assert checked_usage(10, 5, None, None).total_tokens == 15  # a missing total is derived, and flagged
    assert checked_usage(10.0, 5, 15, None).invalid == {}  # a whole float count is a count
    assert checked_usage(10, 5, 3, None).total_tokens == 15  # a total below its parts is refused


async def test_absurd_usage_through_the_service_never_raises(app: App, model_server: ModelServer) -> None:
    model_server.usage_override = {"prompt_tokens": 10**30, "completion_tokens": -3, "total_tokens": 10**40}
    await app.prompts.upsert("default", "p", prompt(model_server))
    with anyio.fail_after(30):
        result = await app.prompts.run("default", "p", label="draft")
    trace = result["trace"]
    assert (trace["inputTokens"], trace["outputTokens"], trace["cost"]) == (0, 0, None)
    assert set(trace["metadata"]["invalidUsage"]) == {"inputTokens", "outputTokens", "totalTokens", "cost"}
    assert (await app.traces.get("default", trace["id"])).to_json() == trace
    assert "Traceback" not in str(result)


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydantic warns inside LiteLLM; in production it only warns
async def test_unparseable_usage_is_a_model_error_without_a_traceback(
    settings: Settings, model_server: ModelServer
) -> None:
    """Usage LiteLLM itself cannot read (NaN) fails the call: recorded as an error trace, answered as
    model_error, and LiteLLM's traceback never reaches the client or the trace."""
    model_server.usage_override = {"prompt_tokens": math.nan}
    async with in_process(settings, TENANT) as env:
        await env.request(TENANT, "PUT", "/prompts/p", json={"content": prompt(model_server)})
        with anyio.fail_after(60):
            ran = await env.request(TENANT, "POST", "/prompts/p/run", json={"label": "draft"})
        assert ran.status_code == 502
        err = check_error_body(ran.json())
        assert err["code"] == "model_error"
        trace = (await env.request(TENANT, "GET", f"/traces/{err['details']['traceId']}")).json()
        assert trace["status"] == "error" and "Traceback" not in trace["error"]["message"]
        assert "site-packages" not in trace["error"]["message"]

"""A number too large for a double is refused however it is written — 1e400, or 1 and 298 zeros then e11 —
wherever it sits in a trace posted without an id (metadata, variables, the manifest): 400 naming the field,
never a 500, and nothing stored."""

from __future__ import annotations

import pytest

from agnt_traces.config import Settings
from http_helpers import in_process

pytestmark = pytest.mark.anyio

HUGE = b"1" + b"0" * 298 + b"e11"  # 1e309: no three-digit exponent, no run of 300 digits


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"promptName": "support", "metadata": {"x": ' + HUGE + b"}}", "metadata.x"),
        (b'{"variables": {"v": [1, ' + HUGE + b"]}}", "variables.v[1]"),
        (b'{"manifest": {"model": {"temperature": ' + HUGE + b"}}}", "manifest.model.temperature"),
    ],
    ids=["metadata", "variables", "manifest"],
)
async def test_an_overflowing_number_is_refused_naming_its_field(settings: Settings, body: bytes, field: str) -> None:
    async with in_process(settings, "acme") as env:
        r = await env.request("acme", "POST", "/traces", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["code"] == "invalid_argument" and err["details"]["field"] == field, err
        assert "finite" in err["message"]
        listed = await env.request("acme", "GET", "/traces")
        assert listed.json()["traces"] == []


@pytest.mark.parametrize("batch", [False, True], ids=["single", "batch"])
async def test_a_time_past_the_year_9999_is_refused_naming_it(settings: Settings, batch: bool) -> None:
    """10000-01-01T00:59:59Z, written in an offset that keeps the year 9999: a 400 naming createdAt, not a 500."""
    trace = {"output": "late", "createdAt": "9999-12-31T23:59:59-01:00"}
    body = {"traces": [{"output": "fine"}, trace]} if batch else trace
    async with in_process(settings, "acme") as env:
        r = await env.request("acme", "POST", "/traces", json=body)
        assert r.status_code == (207 if batch else 400), r.text
        err = r.json()["results"][1]["error"] if batch else r.json()["error"]
        assert err["code"] == "invalid_argument" and err["details"]["field"] == "createdAt", err
        assert "9999" in err["message"]
        listed = (await env.request("acme", "GET", "/traces")).json()["traces"]
        assert len(listed) == (1 if batch else 0)


async def test_the_last_millisecond_of_9999_is_kept_exactly(settings: Settings) -> None:
    async with in_process(settings, "acme") as env:
        last = {"output": "o", "createdAt": "9999-12-31T23:59:59.9999999Z"}  # the 7th digit is dropped
        r = await env.request("acme", "POST", "/traces", json=last)
        assert r.status_code == 201, r.text
        got = await env.request("acme", "GET", f"/traces/{r.json()['id']}")
        assert got.json()["createdAt"] == "9999-12-31T23:59:59.999Z"

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

"""The server as clients run it: ``agnt-traces serve`` launched as a subprocess, spoken to over stdio."""

from __future__ import annotations

import sys

import anyio
import pytest
from mcp import Client

from factories import trace_payload
from mcp_helpers import call, call_error, server_params

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_serve_over_stdio(db_path: str, mode: str) -> None:
    with anyio.fail_after(60):
        async with Client(server_params(db_path), mode=mode) as c:
            created = await call(c, "ingest_trace", trace=trace_payload(output="hello over stdio"))
            page = await call(c, "list_traces", query="stdio")
            assert [r["id"] for r in page["traces"]] == [created["id"]]
            err = await call_error(c, "get_trace", trace_id="nope")
            assert err["code"] == "not_found"
        # A second launch on the same file sees what the first stored.
        async with Client(server_params(db_path), mode=mode) as c:
            trace = await call(c, "get_trace", trace_id=created["id"], fields=["output"])
            assert trace["output"] == "hello over stdio"


async def test_stdio_tenant_is_isolated(db_path: str) -> None:
    with anyio.fail_after(60):
        async with Client(server_params(db_path, "acme")) as c:
            created = await call(c, "ingest_trace", trace=trace_payload())
        async with Client(server_params(db_path, "globex")) as c:
            assert (await call(c, "list_traces"))["traces"] == []
            assert (await call_error(c, "get_trace", trace_id=created["id"]))["code"] == "not_found"


def test_server_start_does_not_import_litellm_or_jinja() -> None:
    import subprocess

    code = (
        "import sys; from agnt_traces.config import Settings; from agnt_traces.server.mcp import build_server;"
        "build_server(Settings(db_path=':memory:'));"
        "bad = [m for m in ('litellm', 'jinja2', 'unidiff', 'yaml') if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"

"""The server as clients run it: ``agnt-traces serve`` launched as a subprocess, spoken to over stdio."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters

from factories import trace_payload
from mcp_helpers import call, call_error

pytestmark = pytest.mark.anyio

AGNT = str(Path(sys.executable).parent / "agnt-traces")


def server_params(db_path: str, tenant: str = "default", **env: str) -> StdioServerParameters:
    """The stdio server gets only a default environment: pass on PYTHONPATH (the code under test), the
    model endpoints a test allowed (``model_server`` sets them) and any ``env`` given here."""
    passed = {k: os.environ[k] for k in ("PYTHONPATH", "AGNT_TRACES_MODEL_ENDPOINTS") if k in os.environ}
    return StdioServerParameters(
        command=AGNT,
        args=["serve", "--db", db_path, "--tenant", tenant],
        env={"AGNT_TRACES_LOG_LEVEL": "WARNING", **passed, **env},
    )


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

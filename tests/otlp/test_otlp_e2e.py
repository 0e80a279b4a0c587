"""End to end over real processes: a stock OpenTelemetry-instrumented app (the OpenAI client with
OpenInference's instrumentation, the SDK's OTLP/HTTP exporter configured by environment variables only)
→ a real ``agnt-traces serve --http`` → ``list_traces`` / ``open_playground`` / ``run_session`` over MCP,
re-running the call on the local model server. Also LiteLLM's own OTel callback, and ``agnt-traces collect``."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from agnt_traces.app import open_app
from agnt_traces.config import Settings
from agnt_traces.services.queries import TraceQuery
from factories import make_token
from mcp_helpers import call
from modelserver import ModelServer

pytestmark = pytest.mark.anyio

SRC = str(Path(__file__).resolve().parents[2] / "src")

APP = """
import openai
from openinference.instrumentation.openai import OpenAIInstrumentor
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

provider = TracerProvider(resource=Resource.create({"service.name": "support-bot"}))
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # endpoint and headers from OTEL_* only
OpenAIInstrumentor().instrument(tracer_provider=provider)
client = openai.OpenAI(base_url=BASE, api_key="sk-local", max_retries=0)
reply = client.chat.completions.create(
    model="gpt-4o-mini",
    temperature=0.2,
    messages=[{"role": "system", "content": "You answer briefly."}, {"role": "user", "content": "where is my parcel"}],
)
print(reply.choices[0].message.content)
provider.shutdown()  # flushes the batch
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return {**env, "PYTHONPATH": SRC, "AGNT_TRACES_LOG_LEVEL": "warning", **extra}


@contextmanager
def server_process(argv: list[str], pattern: str) -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "agnt_traces", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=_env(),
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        match = re.search(pattern, line)
        assert match, line
        yield match.group(1)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(15)
        if proc.stderr:
            proc.stderr.close()


def run_app(code: str, timeout: float = 60, **env: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=_env(**env), check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


async def test_instrumented_openai_app_to_run_session_over_mcp(tmp_path: Path, model_server: ModelServer) -> None:
    db = str(tmp_path / "server.db")
    token = await make_token(db, "acme")
    with server_process(["serve", "--http", "--port", "0", "--db", db], r"serving on (http://127\.0\.0\.1:\d+)") as url:
        out = await anyio.to_thread.run_sync(
            lambda: run_app(
                f"BASE = {model_server.openai_base!r}\n" + APP,
                OTEL_EXPORTER_OTLP_ENDPOINT=url,
                OTEL_EXPORTER_OTLP_HEADERS=f"Authorization=Bearer%20{token}",
            )
        )
        assert out.strip() == "echo: where is my parcel"
        with anyio.fail_after(60):
            async with (
                httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http,
                Client(streamable_http_client(url + "/mcp", http_client=http)) as client,
            ):
                rows = (await call(client, "list_traces", source="otlp"))["traces"]
                assert len(rows) == 1 and rows[0]["outputPreview"] == "echo: where is my parcel"
                trace = await call(client, "get_trace", trace_id=rows[0]["id"])
                assert trace["replayable"] is True and trace["model"]["provider"] == "openai"
                assert trace["manifest"]["system"] == "You answer briefly."
                assert trace["tags"] == ["service:support-bot"]
                session = await call(client, "open_playground", trace_id=rows[0]["id"])
                assert session["replayable"] is True
                assert [b["content"] for b in session["blocks"]] == ["You answer briefly.", "where is my parcel"]
                model = session["models"][0]
                assert (model["provider"], model["name"], model["params"]) == (
                    "openai",
                    "gpt-4o-mini",
                    {"temperature": 0.2},
                )
                # the app called the local model server: the session is pointed at it (an allowed endpoint)
                await call(
                    client,
                    "update_models",
                    session_id=session["id"],
                    models=[{**model, "params": {**model["params"], "api_base": model_server.openai_base}}],
                )
                model_server.reset()
                ran = await call(client, "run_session", session_id=session["id"])
                assert ran["runs"][0]["status"] == "success", ran
                assert ran["runs"][0]["output"] == "echo: where is my parcel"
                sent = model_server.requests[-1].body
                assert sent["messages"] == [
                    {"role": "system", "content": "You answer briefly."},
                    {"role": "user", "content": "where is my parcel"},
                ]


LITELLM_APP = """
import litellm
litellm.callbacks = ["otel"]
reply = litellm.completion(
    model="openai/gpt-4o-mini", api_base=BASE, api_key="sk-local",
    messages=[{"role": "user", "content": "hello from litellm"}],
)
print(reply.choices[0].message.content)
"""  # the SDK flushes its exporter at exit


async def test_litellm_otel_callback_and_the_local_collector(tmp_path: Path, model_server: ModelServer) -> None:
    db = str(tmp_path / "local.db")
    with server_process(
        ["collect", "--port", "0", "--db", db, "--tenant", "me"], r"on (http://127\.0\.0\.1:\d+)/v1/traces"
    ) as url:
        async with httpx2.AsyncClient(timeout=10) as http:
            assert (await http.get(url + "/healthz")).status_code == 200
        out = await anyio.to_thread.run_sync(
            lambda: run_app(
                f"BASE = {model_server.openai_base!r}\n" + LITELLM_APP,
                timeout=120,
                OTEL_EXPORTER="otlp_http",
                OTEL_EXPORTER_OTLP_ENDPOINT=url,
                LITELLM_LOCAL_MODEL_COST_MAP="True",
            )
        )
        assert out.strip().splitlines()[0] == "echo: hello from litellm"
        # acknowledged means committed: once the app has exited (its exporter flushed), the trace is stored
        async with open_app(Settings(db_path=db)) as app:
            rows: list[dict[str, Any]] = (await app.traces.list("me", TraceQuery(source="otlp"))).render()["traces"]
            assert len(rows) == 1
            trace = (await app.traces.get("me", rows[0]["id"])).to_json()
    assert trace["messages"] == [{"role": "user", "content": "hello from litellm"}]
    assert trace["output"] == "echo: hello from litellm" and trace["model"]["name"].endswith("gpt-4o-mini")
    assert trace["replayable"] is True


async def test_collect_listens_on_loopback_only_and_needs_no_token(tmp_path: Path) -> None:
    db = str(tmp_path / "local.db")
    with server_process(["collect", "--port", "0", "--db", db], r"on (http://127\.0\.0\.1:\d+)/v1/traces") as url:
        async with httpx2.AsyncClient(timeout=10) as http:
            body = b'{"resourceSpans": []}'
            r = await http.post(url + "/v1/traces", content=body, headers={"content-type": "application/json"})
            assert r.status_code == 200 and r.json() == {}
            assert (await http.get(url + "/api/v1/openapi.json")).status_code == 404  # only OTLP here

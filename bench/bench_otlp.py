"""OTLP/HTTP ingest under load: bodies of 512 OpenInference LLM spans, posted to a real ``serve --http``.

The corpus is made with the OpenTelemetry SDK (an OpenInference-shaped LLM span per call, each under an
AGENT span as instrumented agents send them, so half the spans of a body are skipped as not LLM calls) and
encoded exactly as the OTLP/HTTP exporter encodes it (protobuf; ``--gzip`` compresses like
``OTEL_EXPORTER_OTLP_COMPRESSION=gzip``). Each body's spans are distinct (fresh trace ids), so every LLM
span is a new trace. Several clients post concurrently over keep-alive connections; the server answers
only once the traces are committed (acknowledged means stored), so spans/s is durable throughput.

    python bench/bench_otlp.py [--bodies 40] [--clients 4] [--spans 512] [--gzip]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import random
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

TENANT = "bench"
SERVER_LOG: deque[str] = deque(maxlen=40)
QUESTIONS = ["Where is my refund?", "Can I change my delivery address?", "How do I reset my password?"]


def make_bodies(count: int, llm_spans: int, compress: bool) -> list[bytes]:
    """``count`` bodies of ``llm_spans`` LLM spans each (OpenInference attributes, as its OpenAI
    instrumentation writes them)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "bench-app", "deployment.environment": "bench"})
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("openinference.instrumentation.openai")
    rng = random.Random(7)
    bodies = []
    for b in range(count):
        exporter.clear()
        for i in range(llm_spans):
            for k in range(1):
                if True:
                    question = f"{rng.choice(QUESTIONS)} (order {b}-{i}-{k})"
                    with tracer.start_as_current_span("ChatCompletion") as span:
                        span.set_attributes(
                            {
                                "openinference.span.kind": "LLM",
                                "llm.model_name": "gpt-4o-mini",
                                "llm.provider": "openai",
                                "llm.system": "openai",
                                "llm.invocation_parameters": json.dumps({"temperature": 0.2, "max_tokens": 256}),
                                "llm.input_messages.0.message.role": "system",
                                "llm.input_messages.0.message.content": "You are a helpful support agent for Acme.",
                                "llm.input_messages.1.message.role": "user",
                                "llm.input_messages.1.message.content": question,
                                "llm.output_messages.0.message.role": "assistant",
                                "llm.output_messages.0.message.content": "Your refund was issued yesterday; "
                                "it should arrive within 3-5 business days.",
                                "llm.token_count.prompt": 40 + rng.randrange(20),
                                "llm.token_count.completion": 19,
                                "llm.token_count.total": 70,
                                "input.value": question,
                                "output.value": "Your refund was issued yesterday.",
                                "session.id": f"session-{b}-{i}",
                            }
                        )
        data = encode_spans(exporter.get_finished_spans()).SerializeToString()
        bodies.append(gzip.compress(data, 6) if compress else data)
    provider.shutdown()
    return bodies


def start_server(db: str) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "AGNT_TRACES_LOG_LEVEL": "warning"}
    cmd = [sys.executable, "-m", "agnt_traces", "serve", "--http", "--port", "0", "--db", db]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            raise SystemExit(f"server exited early (code {proc.poll()})")
        match = re.search(r"serving on (http://\S+?) ", line)
        if match:
            threading.Thread(target=SERVER_LOG.extend, args=(proc.stderr,), daemon=True).start()
            return proc, match.group(1)
    raise SystemExit("server did not print its URL in 30 s")


def create_token(db: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "agnt_traces", "token", "create", "--tenant", TENANT, "--db", db],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


async def post(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, token: str, body: bytes, gz: bool
) -> tuple[int, dict[str, str]]:
    head = (
        f"POST /v1/traces HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {token}\r\n"
        f"content-type: application/x-protobuf\r\ncontent-length: {len(body)}\r\n"
        + ("content-encoding: gzip\r\n" if gz else "")
        + "\r\n"
    )
    writer.write(head.encode() + body)
    status = int((await reader.readline()).split()[1])
    headers: dict[str, str] = {}
    while (line := await reader.readline()) != b"\r\n":
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers


async def run(base: str, token: str, bodies: list[bytes], clients: int, gz: bool) -> tuple[float, list[float], int]:
    host = base.removeprefix("http://")
    name, _, port = host.partition(":")
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    latencies: list[float] = []
    stored = 0

    async def worker() -> None:
        nonlocal stored
        reader, writer = await asyncio.open_connection(name, int(port))
        try:
            while not queue.empty():
                body = queue.get_nowait()
                t0 = time.perf_counter()
                status, headers = await post(reader, writer, host, token, body, gz)
                latencies.append(time.perf_counter() - t0)
                if status != 200:
                    raise SystemExit(f"status {status}")
                stored += int(headers["x-agnt-spans-stored"])
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return time.perf_counter() - t0, latencies, stored


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bodies", type=int, default=40, help="bodies to post (default 40)")
    parser.add_argument("--spans", type=int, default=512, help="LLM spans per body (default 512)")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--gzip", action="store_true", help="gzip the bodies as the exporter can")
    args = parser.parse_args()
    t0 = time.perf_counter()
    bodies = make_bodies(args.bodies, args.spans, args.gzip)
    llm_per_body = spans_per_body = args.spans
    print(
        f"corpus: {len(bodies)} bodies x {spans_per_body} spans ({llm_per_body} LLM), "
        f"{sum(map(len, bodies)) / len(bodies) / 1024:.0f} KiB/body{' gzip' if args.gzip else ''}, "
        f"made in {time.perf_counter() - t0:.1f} s"
    )
    with tempfile.TemporaryDirectory(prefix="agnt-bench-otlp-") as tmp:
        db = str(Path(tmp) / "traces.db")
        token = create_token(db)
        proc, base = start_server(db)
        try:
            elapsed, latencies, stored = asyncio.run(run(base, token, bodies, args.clients, args.gzip))
        except BaseException:
            print("server log (last lines):\n" + "".join(SERVER_LOG), file=sys.stderr)
            raise
        finally:
            proc.terminate()
            proc.wait(15)
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT count(*) FROM traces WHERE source = 'otlp'").fetchone()[0]
    total_spans = spans_per_body * len(bodies)
    print(f"{args.clients} clients: {len(bodies)} requests in {elapsed:.2f} s")
    print(
        f"  {total_spans / elapsed:,.0f} spans/s received, {stored / elapsed:,.0f} LLM spans/s stored "
        f"({stored} stored, {rows} rows in the database)"
    )
    print(
        f"  latency per request: p50 {pct(latencies, 0.5) * 1000:.0f} ms, p95 {pct(latencies, 0.95) * 1000:.0f} ms, "
        f"max {max(latencies) * 1000:.0f} ms"
    )
    return 0 if rows == stored == llm_per_body * len(bodies) else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""The victim tenant, as a separate process: it keeps measuring its own list, get and ingest latencies.

    python tests/victim_probe.py URL TENANT TOKEN TRACE_ID OUT [--period SECONDS]

Three independent loops (one keep-alive connection each, a minimal HTTP/1.1 client on asyncio streams so
that the probe costs the 2-core machine little CPU):

- ``list``:   GET  /api/v1/tenants/TENANT/traces?limit=20
- ``get``:    GET  /api/v1/tenants/TENANT/traces/TRACE_ID
- ``ingest``: POST /api/v1/tenants/TENANT/traces (one small trace)

Each request appends one line to OUT: ``start end op status`` (``time.monotonic()`` seconds, which on
Linux is one clock for every process, so the attacker's process can cut the file into attack windows).
A request that takes longer than 30 s is recorded with status 0 and the connection is opened again.
It runs until it gets SIGTERM or its stdin closes. Standard library only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from typing import Any, TextIO

REQUEST_TIMEOUT = 30.0


class Conn:
    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port, self.token = host, port, token
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None

    async def request(self, method: str, path: str, body: Any = None) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        data = b"" if body is None else json.dumps(body).encode()
        head = (
            f"{method} {path} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\nauthorization: Bearer {self.token}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(data)}\r\n\r\n"
        )
        self.writer.write(head.encode() + data)
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while (line := await self.reader.readline()) != b"\r\n":
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return status


def small_trace(n: int) -> dict[str, Any]:
    return {
        "promptName": "victim-probe",
        "messages": [{"role": "user", "content": f"probe question {n}"}],
        "output": "probe answer",
        "inputTokens": 3,
        "outputTokens": 2,
        "model": {"provider": "openai", "name": "gpt-4o-mini"},
        "tags": ["probe"],
    }


async def loop(
    op: str, conn: Conn, tenant: str, trace_id: str, period: float, out: TextIO, stop: asyncio.Event
) -> None:
    base = f"/api/v1/tenants/{tenant}/traces"
    n = 0
    while not stop.is_set():
        n += 1
        if op == "list":
            call = conn.request("GET", base + "?limit=20")
        elif op == "get":
            call = conn.request("GET", f"{base}/{trace_id}")
        else:
            call = conn.request("POST", base, small_trace(n))
        start = time.monotonic()
        try:
            status = await asyncio.wait_for(call, REQUEST_TIMEOUT)
        except (TimeoutError, OSError, ValueError, IndexError, asyncio.IncompleteReadError):
            status = 0
            await conn.close()
        end = time.monotonic()
        out.write(f"{start:.6f} {end:.6f} {op} {status}\n")
        out.flush()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), period)


async def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("tenant")
    p.add_argument("token")
    p.add_argument("trace_id")
    p.add_argument("out")
    p.add_argument("--period", type=float, default=0.02, help="pause between two requests of one loop")
    args = p.parse_args(argv)
    host, _, port = args.url.removeprefix("http://").partition(":")
    stop = asyncio.Event()
    loop_ = asyncio.get_running_loop()
    loop_.add_signal_handler(signal.SIGTERM, stop.set)
    loop_.add_reader(sys.stdin.fileno(), lambda: stop.set() if not os.read(sys.stdin.fileno(), 1) else None)
    conns = [Conn(host, int(port), args.token) for _ in range(3)]
    with open(args.out, "a", buffering=1) as out:  # noqa: ASYNC230 - one line per request, flushed at once
        await asyncio.gather(
            *(
                loop(op, c, args.tenant, args.trace_id, args.period, out, stop)
                for op, c in zip(("list", "get", "ingest"), conns, strict=True)
            )
        )
    for c in conns:
        await c.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))

"""What the HTTP benchmarks share: a minimal keep-alive HTTP/1.1 client and the trace they post."""

from __future__ import annotations

import asyncio
import json
from typing import Any

__all__ = ["RawClient", "bench_trace"]


class RawClient:
    """A minimal keep-alive HTTP/1.1 client (asyncio streams): it costs the load generator far less CPU than a
    full client library, so that on a small machine the figures measure the server, not the client."""

    def __init__(self, base: str, token: str) -> None:
        self.host, _, port = base.removeprefix("http://").partition(":")
        self.port = int(port)
        self.token = token
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> RawClient:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()

    async def post(self, path: str, body: Any) -> tuple[int, Any]:
        assert self.reader is not None and self.writer is not None
        data = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\nauthorization: Bearer {self.token}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(data)}\r\n\r\n"
        )
        self.writer.write(head.encode() + data)
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while (line := await self.reader.readline()) != b"\r\n":
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return status, json.loads(await self.reader.readexactly(length))


def bench_trace(client: int, n: int, tag: str = "bench") -> dict[str, Any]:
    """A realistic support trace as the HTTP benchmarks post it."""
    return {
        "promptName": "support",
        "promptVersion": 1,
        "manifest": {"system": "You are a helpful support agent.", "tools": [], "model": {}, "etag": "e1"},
        "variables": {"company_name": "Acme", "client": client, "n": n},
        "messages": [{"role": "user", "content": f"Where is my refund? (client {client}, request {n})"}],
        "output": "Your refund was issued yesterday; it should arrive within 3-5 business days.",
        "inputTokens": 40,
        "outputTokens": 19,
        "cost": 0.0012,
        "duration": 0.8,
        "model": {"provider": "openai", "name": "gpt-4o-mini"},
        "status": "success",
        "tags": [tag, f"c{client}"],
    }

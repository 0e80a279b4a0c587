"""A real HTTP server for race and fault tests: ``build_http_app`` served by uvicorn on a loopback port in a
background thread, and a small blocking keep-alive client (``http.client``) that threads can each own."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette

from agnt_traces.config import Settings
from agnt_traces.http.app import _listen, build_http_app

__all__ = ["LiveServer", "Reply", "Rest", "live_server"]


class LiveServer:
    """``build_http_app`` served by uvicorn on a free loopback port, in a thread with its own event loop."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        self.sock = _listen("127.0.0.1", 0)  # the server's own listener (TCP_NODELAY on accepted sockets)
        self.port: int = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.asgi: Starlette = build_http_app(settings, host="127.0.0.1", port=self.port, **kwargs)
        config = uvicorn.Config(
            self.asgi, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=5
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the HTTP server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.sock.close()
        assert not self.thread.is_alive(), "the HTTP server did not stop"


@contextmanager
def live_server(settings: Settings, **kwargs: Any) -> Iterator[LiveServer]:
    srv = LiveServer(settings, **kwargs)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]


class Rest:
    """A keep-alive HTTP/1.1 client for one thread, authorised for one tenant."""

    def __init__(self, port: int, tenant: str, token: str, timeout: float = 30) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.tenant = tenant
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Reply:
        """One request under ``/api/v1/tenants/{tenant}`` (or, for a path starting with ``//``, at the root)."""
        url = path[1:] if path.startswith("//") else f"/api/v1/tenants/{self.tenant}{path}"
        data = None if body is None else json.dumps(body)
        self.conn.request(method, url, body=data, headers={**self.headers, **(headers or {})})
        response = self.conn.getresponse()
        raw = response.read()
        return Reply(
            response.status, json.loads(raw) if raw else None, {k.lower(): v for k, v in response.getheaders()}
        )

    def close(self) -> None:
        self.conn.close()

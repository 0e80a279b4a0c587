"""The load suite (bench/load.py) as tests: ingest and agents at once over HTTP; no errors, nothing lost,
nothing duplicated. A short run by default, the full minute with ``-m slow``."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from agnt_traces.http.app import _listen

LOAD = Path(__file__).parents[2] / "bench" / "load.py"


def run_load(seconds: float, timeout: float) -> str:
    proc = subprocess.run(
        [sys.executable, str(LOAD), "--seconds", str(seconds)], capture_output=True, text=True, timeout=timeout
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "OK: no errors, nothing lost, nothing duplicated" in proc.stdout, output
    print(output)
    return output


def test_short_load_run_has_no_errors_losses_or_duplicates() -> None:
    run_load(6, timeout=120)


@pytest.mark.slow
def test_one_minute_load_run_has_no_errors_losses_or_duplicates() -> None:
    run_load(60, timeout=300)


def test_the_http_listener_gives_connections_tcp_nodelay() -> None:
    """Found by the load suite: without TCP_NODELAY every HTTP answer waited ~40 ms for a delayed ACK."""

    async def check() -> int:
        sock = _listen("127.0.0.1", 0)
        accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                conn = transport.get_extra_info("socket")
                accepted.set_result(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        server = await asyncio.get_running_loop().create_server(Probe, sock=sock)  # as uvicorn serves it
        try:
            _, writer = await asyncio.open_connection(*sock.getsockname())
            value = await asyncio.wait_for(accepted, 10)
            writer.close()
            return value
        finally:
            server.close()
            await server.wait_closed()

    assert asyncio.run(check()) != 0

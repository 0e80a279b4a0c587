"""The event loops this package runs tell anyio once that they are asyncio's (eventloop.asyncio_owned)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from typing import Any

import anyio
import anyio.lowlevel
import pytest
import sniffio

from agnt_traces.cli.common import run_async
from agnt_traces.eventloop import asyncio_owned


@pytest.mark.parametrize("owned", [True, False])
def test_inside_anyio_asks_no_task_and_outside_nothing_is_left(monkeypatch: pytest.MonkeyPatch, owned: bool) -> None:
    sniffed: list[int] = []
    real = asyncio.current_task

    def counting(loop: Any = None) -> Any:
        if sys._getframe(1).f_globals.get("__name__") == "sniffio._impl":  # sniffio sniffing for anyio
            sniffed.append(1)
        return real(loop)

    async def main() -> tuple[str, str | None]:
        monkeypatch.setattr(asyncio, "current_task", counting)
        await anyio.lowlevel.checkpoint()  # anyio asks sniffio which library runs
        event = anyio.Event()
        event.set()
        in_worker = await anyio.to_thread.run_sync(lambda: sniffio.thread_local.name)
        monkeypatch.undo()
        return sniffio.current_async_library(), in_worker

    with asyncio_owned() if owned else contextlib.nullcontext():
        library, in_worker = asyncio.run(main())
    assert library == "asyncio"
    assert in_worker is None  # a worker thread asks for itself
    if not owned:  # the test can tell: without it, sniffio sniffs at every anyio call
        assert len(sniffed) >= 3
        return
    assert sniffed == []
    assert sniffio.thread_local.name is None
    with pytest.raises(sniffio.AsyncLibraryNotFoundError):
        sniffio.current_async_library()


def test_restored_when_the_loop_fails_and_on_other_threads_untouched() -> None:
    async def boom() -> None:
        raise RuntimeError("boom")

    seen: list[str | None] = []
    other = threading.Thread(target=lambda: seen.append(sniffio.thread_local.name))
    with pytest.raises(RuntimeError), asyncio_owned():
        other.start()
        other.join()
        asyncio.run(boom())
    assert seen == [None]
    assert sniffio.thread_local.name is None


def test_the_command_runner_and_the_http_server_run_their_loops_owned(monkeypatch: pytest.MonkeyPatch) -> None:
    async def command() -> int:
        return 7 if sniffio.thread_local.name == "asyncio" else 1

    assert run_async(command) == 7
    assert sniffio.thread_local.name is None

    import socket

    import uvicorn
    from starlette.applications import Starlette

    from agnt_traces.http.app import run_server

    during: list[str | None] = []
    monkeypatch.setattr("agnt_traces.http.app.serving", lambda: None)  # this process is not a server
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: during.append(sniffio.thread_local.name))
    sock = socket.socket()
    run_server(Starlette(), sock, "ready")
    assert during == ["asyncio"]
    assert sniffio.thread_local.name is None
    assert sock.fileno() == -1  # closed as before


def test_a_server_runs_on_uvloop_and_a_command_on_asyncios_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stdio server asks for the loop uvicorn picks for the HTTP server (uvloop, where installed); the
    other commands keep asyncio's; without uvloop, a server runs on asyncio's too."""
    import uvloop

    async def loop_kind() -> int:
        loop = asyncio.get_running_loop()
        return 1 if isinstance(loop, uvloop.Loop) else 2 if isinstance(loop, asyncio.BaseEventLoop) else 3

    assert run_async(loop_kind, server=True) == 1
    assert run_async(loop_kind) == 2
    assert sniffio.thread_local.name is None
    monkeypatch.setitem(sys.modules, "uvloop", None)  # not installed
    assert run_async(loop_kind, server=True) == 2


def test_serve_runs_the_stdio_server_on_the_server_loop(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    from agnt_traces.cli import main

    seen: list[bool] = []

    def fake_run_async(coro_fn: Any, *, server: bool = False) -> int:
        seen.append(server)
        coro_fn().close()
        return 0

    monkeypatch.setattr("agnt_traces.cli.serve.run_async", fake_run_async)
    monkeypatch.setattr("agnt_traces.cli.serve._exit_now", lambda status: status)
    assert main(["serve", "--db", str(tmp_path / "t.db")]) == 0
    assert seen == [True]

"""The stdio server's stdin: a pipe or socket is read by the event loop (``_PipeLineReader``), anything else
by a daemon thread (``_LineReader``). Both must yield the same items for the same bytes, however they arrive:
whole lines, an over-long line as ``_TooLong`` (its head and full size, the rest discarded as it streams), a
last line without its newline, then EOF. And the event loop's reader holds at most two waiting lines before
it stops reading."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio
import pytest

from agnt_traces.server import stdio
from modelserver import ModelServer

pytestmark = pytest.mark.anyio

LIMIT = 100


def _stream(rng: random.Random) -> bytes:
    lines = []
    for _ in range(rng.randrange(1, 40)):
        size = rng.choice([0, 1, LIMIT - 1, LIMIT, LIMIT + 1, LIMIT + 2, rng.randrange(300), rng.randrange(20_000)])
        lines.append(bytes(rng.randrange(32, 127) for _ in range(size)) + b"\n")
    if rng.random() < 0.5:  # a last line without its newline
        lines.append(bytes(rng.randrange(32, 127) for _ in range(rng.choice([3, LIMIT, LIMIT + 1, 5000]))))
    return b"".join(lines)


def _norm(item: Any) -> Any:
    if item is stdio._EOF:
        return "EOF"
    if isinstance(item, stdio._TooLong):
        return ("too long", item.head, item.size)
    return item


async def _by_thread(data: bytes) -> list[Any]:
    with tempfile.TemporaryFile() as f:
        f.write(data)
        f.seek(0)
        reader = stdio._LineReader(f.fileno(), LIMIT)
        items = []
        with anyio.fail_after(10):
            while (item := await reader.next()) is not stdio._EOF:
                items.append(_norm(item))
    return [*items, "EOF"]


class _Transport:
    def __init__(self) -> None:
        self.paused = False
        self.pauses = 0

    def pause_reading(self) -> None:
        assert not self.paused
        self.paused, self.pauses = True, self.pauses + 1

    def resume_reading(self) -> None:
        assert self.paused
        self.paused = False


async def _by_loop(data: bytes, rng: random.Random) -> list[Any]:
    reader = stdio._PipeLineReader(LIMIT)
    transport = _Transport()
    reader._transport = transport  # type: ignore[assignment]
    items: list[Any] = []
    at = 0
    while at < len(data):
        if transport.paused:  # the loop would not read now: take a line first
            items.append(_norm(await reader.next()))
            continue
        size = rng.choice([1, 2, 7, 64, 1000, 70_000])
        reader.data_received(data[at : at + size])
        at += size
    reader.eof_received()
    reader.connection_lost(None)
    with anyio.fail_after(10):
        while (item := await reader.next()) is not stdio._EOF:
            items.append(_norm(item))
    assert await reader.next() is stdio._EOF  # EOF stays EOF
    return [*items, "EOF"]


@pytest.mark.parametrize("seed", range(40))
async def test_the_loop_reader_yields_what_the_thread_reader_yields(seed: int) -> None:
    rng = random.Random(seed)
    data = _stream(rng)
    expected = await _by_thread(data)
    assert await _by_loop(data, rng) == expected
    assert any(isinstance(i, tuple) for i in expected) or seed > 5  # over-long lines are in the mix


async def test_an_over_long_line_keeps_its_head_and_counts_every_byte() -> None:
    reader = stdio._PipeLineReader(LIMIT)
    reader._transport = _Transport()  # type: ignore[assignment]
    line = b'{"id": 42, "x": "' + b"a" * 10_000 + b'"}\n'
    for i in range(0, len(line), 333):
        reader.data_received(line[i : i + 333])
    reader.data_received(b"next\n")
    first = await reader.next()
    assert isinstance(first, stdio._TooLong)
    assert first.head == line[: LIMIT + 1] and first.size == len(line)
    assert await reader.next() == b"next\n"
    assert len(reader._buf) == 0  # the discarded bytes were not kept


async def test_reading_pauses_while_two_lines_wait() -> None:
    reader = stdio._PipeLineReader(LIMIT)
    transport = _Transport()
    reader._transport = transport  # type: ignore[assignment]
    reader.data_received(b"a\n")
    assert not transport.paused
    reader.data_received(b"b\nc\nd\n")
    assert transport.paused and transport.pauses == 1
    assert [await reader.next() for _ in range(3)] == [b"a\n", b"b\n", b"c\n"]
    assert not transport.paused  # one line left: reading goes on
    assert await reader.next() == b"d\n"


def _serve_with_stdin(stdin: Any, db: Path) -> list[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGNT_TRACES_")}
    proc = subprocess.run(
        [sys.executable, "-m", "agnt_traces", "serve", "--db", str(db)],
        stdin=stdin,
        capture_output=True,
        env={**env, "AGNT_TRACES_STDIO_MAX_LINE_BYTES": "2000"},
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    return proc.stdout.splitlines()


REQUESTS = (
    b'{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", '
    b'"capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}\n'
    b'{"jsonrpc": "2.0", "method": "notifications/initialized"}\n'
    b'{"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "x", "arguments": {"y": "'
    + b"z" * 3000
    + b'"}}}\n{"jsonrpc": "2.0", "id": 3, "method": "tools/list"}'  # the last line without its newline
)


@pytest.mark.parametrize("kind", ["file", "pipe", "socket"])
def test_the_server_reads_requests_from_a_file_a_pipe_or_a_socket(tmp_path: Path, kind: str) -> None:
    import socket
    import threading

    if kind == "file":
        path = tmp_path / "requests.jsonl"
        path.write_bytes(REQUESTS)
        with path.open("rb") as f:
            out = _serve_with_stdin(f, tmp_path / "t.db")
    else:
        if kind == "pipe":
            read_end, write_end = os.pipe()
            ours, theirs = os.fdopen(write_end, "wb"), os.fdopen(read_end, "rb")
        else:
            a, b = socket.socketpair()
            ours, theirs = a.makefile("wb"), b.makefile("rb")
            a.close()
            b.close()

        def feed() -> None:
            for i in range(0, len(REQUESTS), 500):  # in pieces, as a client's writes arrive
                ours.write(REQUESTS[i : i + 500])
                ours.flush()
            ours.close()

        threading.Thread(target=feed, daemon=True).start()
        with theirs:
            out = _serve_with_stdin(theirs, tmp_path / "t.db")
    import json

    answers = {m["id"]: m for m in map(json.loads, out)}
    assert answers[1]["result"]["serverInfo"]["name"] == "agnt-traces"
    assert answers[2]["error"]["code"] == -32600 and "2000 bytes" in answers[2]["error"]["message"]
    assert any(t["name"] == "ingest_trace" for t in answers[3]["result"]["tools"])


def test_a_long_call_in_flight_at_the_end_of_stdin_holds_the_exit_for_the_grace_only(
    tmp_path: Path, model_server: ModelServer
) -> None:
    import json
    import time

    model_server.script(["slow:60"])
    content = {
        "blocks": [{"id": "s", "role": "system", "content": "Be brief."}],
        "model": {"provider": "openai", "name": "gpt-4o-mini", "params": {"api_base": model_server.openai_base}},
    }
    lines = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": json.loads(REQUESTS.split(b"\n")[0])["params"]},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "upsert_prompt", "arguments": {"name": "slow", "content": content}},
        },
    ]
    run = {"name": "run_prompt", "arguments": {"name": "slow", "label": "draft"}}
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGNT_TRACES_") or k.endswith("MODEL_ENDPOINTS")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "agnt_traces", "serve", "--db", str(tmp_path / "t.db")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        for line in lines:
            proc.stdin.write(json.dumps(line).encode() + b"\n")
        proc.stdin.flush()
        answers = [json.loads(proc.stdout.readline()), json.loads(proc.stdout.readline())]
        assert [a["id"] for a in answers] == [1, 2] and not answers[1]["result"].get("isError")
        proc.stdin.write(
            json.dumps({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": run}).encode() + b"\n"
        )
        proc.stdin.flush()
        deadline = time.monotonic() + 30
        while not model_server.requests and time.monotonic() < deadline:  # the model call is under way
            time.sleep(0.05)
        assert model_server.requests
        closed = time.monotonic()
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
        took = time.monotonic() - closed
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    assert stdio.EOF_GRACE - 0.5 < took < stdio.EOF_GRACE + 6, took  # waited for the answer, then gave up

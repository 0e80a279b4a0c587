"""The stdio server's stdout: answers go out whole and in order, small ones into a pipe with room at once and
the rest from a thread of their own; a client that
stops reading holds at most the backlog in memory (then the writer waits, off the event loop), and what is
flushed before the end is written before the server exits."""

from __future__ import annotations

import json
import os
import select
import socket
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from agnt_traces.server import stdio

pytestmark = pytest.mark.anyio


def _read_all(fd: int, into: bytearray, done: threading.Event) -> None:
    while chunk := os.read(fd, 1 << 16):
        into += chunk
    done.set()


async def test_lines_go_out_whole_and_in_order() -> None:
    read_end, write_end = os.pipe()
    got, done = bytearray(), threading.Event()
    threading.Thread(target=_read_all, args=(read_end, got, done), daemon=True).start()
    writer = stdio._LineWriter(write_end)

    async def answer(i: int) -> None:  # small answers (written at once) and big ones (by the thread), mixed
        pad = "x" * (i % 700 if i % 7 else 3 * select.PIPE_BUF + i)
        await writer.write(json.dumps({"id": i, "pad": pad}) + "\n")
        await writer.flush()

    for i in range(2000):
        await answer(i)
        if i % 100 == 0:
            await writer.send({"id": f"sent {i}"})
    await writer.aclose(5)
    os.close(write_end)
    assert done.wait(5)
    os.close(read_end)
    lines = [json.loads(line) for line in got.decode().splitlines()]
    numbered = [m["id"] for m in lines if isinstance(m["id"], int)]
    assert numbered == list(range(2000)), "an answer was lost, cut or reordered"
    assert len(lines) == 2020


async def test_a_client_that_stops_reading_holds_at_most_the_backlog(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stdio, "_BACKLOG", 256 * 1024)
    read_end, write_end = os.pipe()  # nobody reads: the pipe fills (64 KiB), then the backlog
    writer = stdio._LineWriter(write_end)
    line = "y" * 1023 + "\n"
    flushed, ticks, stop, filler_done = 0, 0, False, anyio.Event()

    async def filler() -> None:  # an SDK writer answering as fast as it can
        nonlocal flushed
        while not stop:
            await writer.write(line)
            await writer.flush()
            flushed += len(line)
        filler_done.set()

    async def ticker() -> None:  # the event loop keeps running while a flush waits for room
        nonlocal ticks
        while True:
            await anyio.sleep(0.01)
            ticks += 1

    got, done = bytearray(), threading.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(filler)
        tg.start_soon(ticker)
        await anyio.sleep(1.0)
        held, ticked = flushed, ticks
        stop = True
        threading.Thread(target=_read_all, args=(read_end, got, done), daemon=True).start()  # reading again
        with anyio.fail_after(5):
            await filler_done.wait()
        tg.cancel_scope.cancel()
    assert held < 256 * 1024 + 64 * 1024 + 8 * 1024, f"{held} bytes accepted for a client that reads nothing"
    assert ticked >= 50, f"the event loop stalled while a flush waited for room ({ticked} ticks in 1 s)"
    await writer.aclose(5)
    os.close(write_end)
    assert done.wait(5)
    os.close(read_end)
    assert len(got) == flushed, "an answer flushed while the client was not reading was lost"


@pytest.mark.parametrize("size", [10, 3 * select.PIPE_BUF])
async def test_a_closed_client_fails_the_flush(size: int) -> None:
    """At once for a small answer written by flush itself; at the next flush for one the thread writes."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    writer = stdio._LineWriter(write_end)
    with pytest.raises(stdio.WireLost) as lost:
        for _ in range(100):
            await writer.write("x" * size + "\n")
            await writer.flush()
            await anyio.sleep(0.01)
    assert lost.value.broken_pipe
    await writer.aclose(1)
    os.close(write_end)


async def test_small_answers_into_a_pipe_with_room_wake_no_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    read_end, write_end = os.pipe()
    got, done = bytearray(), threading.Event()
    threading.Thread(target=_read_all, args=(read_end, got, done), daemon=True).start()
    writers: list[str] = []
    real_write = os.write

    def write(fd: int, data: Any) -> int:
        if fd == write_end:
            writers.append(threading.current_thread().name)
        return real_write(fd, data)

    monkeypatch.setattr(stdio.os, "write", write)
    writer = stdio._LineWriter(write_end)
    for i in range(200):
        await writer.write(json.dumps({"id": i}) + "\n")
        await writer.flush()
        await anyio.sleep(0.001)  # the client reads: the pipe has room again
    await writer.write("z" * (2 * select.PIPE_BUF) + "\n")  # too big to be sure it fits: the thread writes it
    await writer.flush()
    await writer.aclose(5)
    os.close(write_end)
    assert done.wait(5)
    os.close(read_end)
    assert writers[:200] == [threading.current_thread().name] * 200
    assert writers[200:] and set(writers[200:]) == {"agnt-traces-stdout"}
    assert len(got.decode().splitlines()) == 201


async def test_a_file_or_terminal_is_always_written_by_the_thread(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "out.jsonl", os.O_WRONLY | os.O_CREAT)
    writer = stdio._LineWriter(fd)
    assert writer._to_pipe is False
    for i in range(50):
        await writer.write(json.dumps({"id": i}) + "\n")
        await writer.flush()
    await writer.aclose(5)
    os.close(fd)
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == list(range(50))


async def test_a_pipe_the_client_made_non_blocking_loses_nothing() -> None:
    """A client may hand over a pipe in non-blocking mode (the mode belongs to the pipe, shared by both
    processes): a full pipe is then waited for, not taken for a closed client."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    writer = stdio._LineWriter(write_end)
    for i in range(300):  # about 600 KiB with nobody reading yet: the pipe fills many times over
        await writer.write(json.dumps({"id": i, "pad": "p" * (i % 3 * 1500 + 1000)}) + "\n")
        await writer.flush()
    got, done = bytearray(), threading.Event()
    threading.Thread(target=_read_all, args=(read_end, got, done), daemon=True).start()
    for i in range(300, 400):
        await writer.write(json.dumps({"id": i}) + "\n")
        await writer.flush()
    await writer.aclose(5)
    os.close(write_end)
    assert done.wait(5)
    os.close(read_end)
    assert [json.loads(line)["id"] for line in got.decode().splitlines()] == list(range(400))


async def test_once_the_input_has_ended_a_client_that_reads_nothing_is_given_up(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(stdio, "_BACKLOG", 64 * 1024)
    monkeypatch.setattr(stdio, "WRITE_STALL", 0.5)
    read_end, write_end = os.pipe()  # nobody reads
    writer = stdio._LineWriter(write_end)
    ended = False
    writer.input_ended = lambda: ended

    async def fill() -> None:
        for _ in range(1000):
            await writer.write("w" * 4095 + "\n")
            await writer.flush()

    monkeypatch.setattr(stdio, "BACKLOG_HINT_AFTER", 1.0)
    with anyio.move_on_after(2.5) as waited:  # input still open: the flush waits for the client, for ever
        await fill()
    assert waited.cancelled_caught, "a flush past the backlog returned for a client that reads nothing"
    hint = capsys.readouterr().err
    assert hint.count("bytes of answers wait for the client to read them; no more requests are read") == 1
    ended = True
    started = time.monotonic()
    with pytest.raises(stdio.WireLost) as lost:
        await fill()
    assert 0.5 <= time.monotonic() - started < 3
    assert lost.value.reason.startswith("the client read no answer for ") and not lost.value.broken_pipe
    assert await writer.aclose(0.3) > 64 * 1024  # what stays unwritten is counted, not waited for
    os.close(read_end)
    os.close(write_end)


def test_the_end_of_input_is_seen_with_requests_still_unread_in_it(tmp_path: Path) -> None:
    """What lets a server that stopped reading (its client reads no answers) notice that the client has
    closed stdin: a pipe or a socket without a writer, or a file."""
    read_end, write_end = os.pipe()
    os.write(write_end, b"unread request\n")
    ended = stdio._input_ended_probe(read_end)
    assert not ended()
    os.close(write_end)
    assert ended()
    os.close(read_end)
    ours, theirs = socket.socketpair()
    ended = stdio._input_ended_probe(theirs.fileno())
    assert not ended()
    ours.shutdown(socket.SHUT_WR)  # inetd / socat: the client is done writing, still reading
    assert ended()
    ours.close()
    theirs.close()
    requests = tmp_path / "requests.jsonl"
    requests.write_bytes(b"{}\n")
    with requests.open("rb") as file:
        assert stdio._input_ended_probe(file.fileno())()


async def test_a_client_that_reads_slowly_is_seen_reading_not_given_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """Progress is seen every PIPE_BUF bytes the client reads (one big blocking write would show none until the
    client had read nearly all of it, and a slow reader would be given up with its answer cut)."""
    monkeypatch.setattr(stdio, "WRITE_STALL", 0.5)
    read_end, write_end = os.pipe()
    writer = stdio._LineWriter(write_end)
    writer.input_ended = lambda: True
    got = bytearray()

    def slow_reader() -> None:  # about 40 KB/s: 200 KB take ~5 s, never 0.5 s without reading
        while chunk := os.read(read_end, 4096):
            got.extend(chunk)
            time.sleep(0.1)

    for i in range(50):
        await writer.write(json.dumps({"id": i, "pad": "s" * 4000}) + "\n")
        await writer.flush()
    reader = threading.Thread(target=slow_reader)
    reader.start()
    assert await writer.aclose(0.5) == 0, "a client reading steadily was given up"
    os.close(write_end)
    reader.join(10)
    os.close(read_end)
    assert [json.loads(line)["id"] for line in got.decode().splitlines()] == list(range(50))


async def test_closing_within_a_deadline_stops_waiting_for_a_client_that_reads_on() -> None:
    read_end, write_end = os.pipe()
    writer = stdio._LineWriter(write_end)
    for i in range(400):  # ~1.6 MB
        await writer.write(json.dumps({"id": i, "pad": "d" * 4000}) + "\n")
        await writer.flush()
    got, stop = bytearray(), threading.Event()

    def steady_reader() -> None:  # reads on for about 4 s: never idle long enough for the stall rule
        while not stop.is_set() and (chunk := os.read(read_end, 4096)):
            got.extend(chunk)
            time.sleep(0.01)

    reader = threading.Thread(target=steady_reader)
    reader.start()
    started = time.monotonic()
    left = await writer.aclose(1.0, within=1.0)
    took = time.monotonic() - started
    stop.set()
    reader.join(10)
    os.close(read_end)  # the thread's write fails (EPIPE) and it ends, before its descriptor is closed
    writer._thread.join(5)
    os.close(write_end)
    assert 0.9 <= took < 2, f"closing took {took:.1f} s"
    assert left > 0 and len(got) > 0

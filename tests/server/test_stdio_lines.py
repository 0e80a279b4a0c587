"""The stdio server's stdin: request lines exactly as ``readline(limit + 1)`` would cut them, however the
client's writes fall into reads; the lines of one read handed over together; and at most two reads held for
the event loop before the thread stops reading."""

from __future__ import annotations

import io
import os
import random
import threading
import time
from typing import Any

import anyio
import pytest

from agnt_traces.server import stdio

pytestmark = pytest.mark.anyio


def _expected(data: bytes, limit: int) -> list[Any]:
    """What the server took its lines to be before reads were batched: ``readline(limit + 1)``, an over-long
    line discarded to its end and reported as (its first bytes, its length)."""
    f = io.BytesIO(data)
    out: list[Any] = []
    while line := f.readline(limit + 1):
        if len(line) > limit and not line.endswith(b"\n"):
            head, size = line, len(line)
            while not line.endswith(b"\n"):
                line = f.readline(1 << 16)
                if not line:
                    break
                size += len(line)
            out.append(("too long", head, size))
            continue
        out.append(line)
    return out


async def _read_lines(data: bytes, limit: int, pieces: list[int]) -> list[Any]:
    read_end, write_end = os.pipe()

    def client() -> None:  # writes in pieces, so that lines and over-long lines straddle reads
        at = 0
        for size in pieces:
            os.write(write_end, data[at : at + size])
            at += size
            time.sleep(0.0005)
        os.write(write_end, data[at:])
        os.close(write_end)

    threading.Thread(target=client, daemon=True).start()
    reader = stdio._LineReader(read_end, limit)
    got: list[Any] = []
    with anyio.fail_after(20):
        while (item := await reader.next()) is not stdio._EOF:
            got.append(("too long", item.head, item.size) if isinstance(item, stdio._TooLong) else item)
    os.close(read_end)
    return got


@pytest.mark.parametrize("chunk", [1, 7, 23, 1 << 16])
async def test_lines_are_cut_as_readline_cuts_them_whatever_the_reads(
    chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stdio, "_CHUNK", chunk)
    limit = 20
    for seed in range(12):
        rng = random.Random(seed)
        lines = []
        for _ in range(rng.randrange(1, 40)):
            size = rng.choice([0, 1, limit - 1, limit, limit + 1, limit + 2, rng.randrange(60), rng.randrange(300)])
            lines.append(bytes(rng.choice(b"ab{}") for _ in range(size)) + b"\n")
        data = b"".join(lines)
        if seed % 3 == 0:
            data += b"x" * rng.choice([1, limit, limit + 1, 50])  # a last line without its newline
        pieces = [rng.randrange(1, 50) for _ in range(rng.randrange(0, 12))]
        assert await _read_lines(data, limit, pieces) == _expected(data, limit), (chunk, seed)


async def test_the_lines_of_one_read_are_handed_over_together() -> None:
    read_end, write_end = os.pipe()
    os.write(write_end, b"".join(b'{"n": %d}\n' % i for i in range(100)))
    reader = stdio._LineReader(read_end, 1000)
    with anyio.fail_after(10):
        assert await reader.next() == b'{"n": 0}\n'
    assert len(reader._ready) == 99  # no wait, no wake-up of the thread for the next 99
    os.close(write_end)
    with anyio.fail_after(10):
        rest = [await reader.next() for _ in range(100)]
    assert rest[-1] is stdio._EOF and rest[98] == b'{"n": 99}\n'
    os.close(read_end)


async def test_a_reader_the_loop_does_not_take_from_stops_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stdio, "_CHUNK", 1024)
    read_end, write_end = os.pipe()
    written = [0]

    def client() -> None:
        line = b"y" * 99 + b"\n"
        try:
            for _ in range(20_000):  # 2 MB, far more than the pipe and the reader hold
                os.write(write_end, line)
                written[0] += len(line)
        except OSError:
            pass

    threading.Thread(target=client, daemon=True).start()
    reader = stdio._LineReader(read_end, 1000)
    await anyio.sleep(0.5)
    held = written[0]
    # The pipe's buffer (64 KiB on Linux), two reads handed over and one being split: nothing more.
    assert held <= (1 << 16) + 3 * 1024 + 100
    with anyio.fail_after(10):
        for _ in range(30):
            assert await reader.next() == b"y" * 99 + b"\n"
    await anyio.sleep(0.2)
    assert written[0] > held  # taking lines lets it read on
    os.close(write_end)
    os.close(read_end)


def _request(i: int) -> bytes:
    return b'{"jsonrpc": "2.0", "id": %d, "method": "ping"}\n' % i


async def test_at_most_max_in_flight_requests_are_handed_on_and_notifications_still_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Thousands of requests written at once are handed to the SDK as they are answered: each is a task of
    its own, and a client could otherwise hold any number of them (and their answers) in memory."""
    monkeypatch.setattr(stdio, "MAX_IN_FLIGHT", 4)
    read_end, write_end = os.pipe()
    out_read, out_write = os.pipe()
    notification = (
        b'{"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": 1, "progress": 1}}\n'
    )
    os.write(write_end, b"".join(_request(i) for i in range(4)) + notification + _request(4) + _request(5))
    writer = stdio._LineWriter(out_write)
    lines = stdio._ScreenedStdin(stdio._LineReader(read_end, 10_000), writer)
    with anyio.fail_after(10):
        handed = [await lines.__anext__() for _ in range(5)]  # four requests, then the notification passes
    assert '"progressToken"' in handed[4] and writer.unanswered == {0, 1, 2, 3}
    got: list[str] = []

    async def next_line() -> None:
        got.append(await lines.__anext__())

    async with anyio.create_task_group() as tg:
        tg.start_soon(next_line)
        await anyio.sleep(0.3)
        assert got == []  # the fifth request waits for an answer
        await writer.write('{"jsonrpc":"2.0","id":2,"result":{}}\n')
        await writer.flush()
    assert '"id": 4' in got[0] and writer.unanswered == {0, 1, 3, 4}
    for fd in (read_end, write_end, out_read):
        os.close(fd)
    await writer.aclose(0)

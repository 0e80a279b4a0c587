"""The stdio server's stdin: request lines exactly as ``readline(limit + 1)`` would cut them, however the
client's writes fall into reads; the lines of one read handed over together; and at most two reads held for
the event loop before the thread stops reading."""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import select
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


def _request(i: int | str) -> bytes:
    return b'{"jsonrpc": "2.0", "id": %s, "method": "ping"}\n' % json.dumps(i).encode()


def _cancel(i: int | str) -> bytes:
    return (
        b'{"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": %s}}\n'
        % json.dumps(i).encode()
    )


class _Wire:
    """A ``_ScreenedStdin`` over a pipe the test writes into, and its writer over a pipe the test can read."""

    def __init__(self) -> None:
        self.read_end, self.write_end = os.pipe()
        self.out_read, out_write = os.pipe()
        self.writer = stdio._LineWriter(out_write)
        self.lines = stdio._ScreenedStdin(stdio._LineReader(self.read_end, 10_000), self.writer)

    def send(self, data: bytes) -> None:
        os.write(self.write_end, data)

    async def next(self, within: float = 10) -> str:
        with anyio.fail_after(within):
            return await self.lines.__anext__()

    async def not_now(self) -> None:
        """__anext__ gives nothing within 0.3 s (it waits for a line or for a call to end: cancelled there, it
        loses nothing)."""
        with anyio.move_on_after(0.3):
            line = await self.lines.__anext__()
            raise AssertionError(f"got {line!r}")

    async def answer(self, msg_id: int | str) -> None:
        await self.writer.write(
            json.dumps({"jsonrpc": "2.0", "id": msg_id, "result": {}}, separators=(",", ":")) + "\n"
        )
        await self.writer.flush()

    def answers(self) -> list[dict[str, Any]]:
        ready, _, _ = select.select([self.out_read], [], [], 1)
        data = os.read(self.out_read, 1 << 20) if ready else b""
        return [json.loads(line) for line in data.splitlines()]

    async def close(self) -> None:
        for fd in (self.read_end, self.write_end, self.out_read):
            with contextlib.suppress(OSError):
                os.close(fd)
        await self.writer.aclose(0)


@pytest.fixture
async def wire(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(stdio, "MAX_IN_FLIGHT", 4)
    w = _Wire()
    yield w
    await w.close()


async def test_past_max_in_flight_requests_are_held_and_notifications_still_pass(wire: _Wire) -> None:
    """Thousands of requests written at once run MAX_IN_FLIGHT at a time: each is a task of the SDK's, and a
    client could otherwise hold any number of them (and their answers) in memory."""
    progress = (
        b'{"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": 1, "progress": 1}}\n'
    )
    wire.send(b"".join(_request(i) for i in range(6)) + progress)
    handed = [await wire.next() for _ in range(5)]  # four requests; the notification passes the two held
    assert '"progressToken"' in handed[4] and wire.writer.running == 4
    await wire.not_now()
    await wire.answer(2)
    assert '"id": 4' in await wire.next()
    await wire.answer(0)
    assert '"id": 5' in await wire.next()


async def test_a_cancel_behind_a_held_request_is_read_and_frees_its_place(wire: _Wire) -> None:
    wire.send(b"".join(_request(i) for i in range(5)) + _cancel(1))  # request 4 is held, then a cancel
    assert [json.loads(await wire.next())["id"] for _ in range(4)] == [0, 1, 2, 3]
    cancel = json.loads(await wire.next())
    assert cancel["method"] == "notifications/cancelled" and wire.writer.running == 3
    assert json.loads(await wire.next())["id"] == 4


async def test_a_held_request_the_client_cancels_is_not_run(wire: _Wire) -> None:
    wire.send(b"".join(_request(i) for i in range(5)) + _cancel(4) + _request(5))
    assert [json.loads(await wire.next())["id"] for _ in range(4)] == [0, 1, 2, 3]
    assert json.loads(await wire.next())["method"] == "notifications/cancelled"
    await wire.answer(0)
    assert json.loads(await wire.next())["id"] == 5  # 4 was dropped


async def test_an_id_still_in_flight_is_refused_and_ids_match_as_the_sdk_matches_them(wire: _Wire) -> None:
    """The SDK keeps one request per id ("7" and 7 are one): a second one would take the first one's answer or
    cancel, so it is refused (MCP: an id is never reused while in flight), running or held alike."""
    wire.send(_request(7) + _request(7) + _request("7"))
    assert json.loads(await wire.next())["id"] == 7
    await wire.not_now()
    refused = wire.answers()
    assert [(a["id"], a["error"]["code"]) for a in refused] == [(7, -32600), ("7", -32600)]
    assert "still in flight" in refused[0]["error"]["message"] and wire.writer.running == 1
    wire.send(_cancel("7"))  # names call 7 as the SDK matches it: no answer will come for it
    assert json.loads(await wire.next())["method"] == "notifications/cancelled"
    assert wire.writer.running == 0
    wire.send(_request(7))  # free again
    assert json.loads(await wire.next())["id"] == 7
    await wire.answer(7)
    await wire.answer(7)  # one answer too many (a late one): never counted below zero
    assert wire.writer.running == 0
    assert len(wire.answers()) == 2  # (the two answers just written)
    wire.send(b"".join(_request(i) for i in range(4)) + _request(10) + _request("10"))  # 10 held, "10" refused
    assert [json.loads(await wire.next())["id"] for _ in range(4)] == [0, 1, 2, 3]
    await wire.not_now()
    assert [(a["id"], a["error"]["code"]) for a in wire.answers()] == [("10", -32600)]


async def test_held_request_lines_are_bounded_in_bytes(wire: _Wire, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stdio, "HELD_BYTES", 1000)
    big = b'{"jsonrpc": "2.0", "id": %d, "method": "ping", "params": {"_meta": {"pad": "%s"}}}\n'
    wire.send(b"".join(_request(i) for i in range(4)) + b"".join(big % (i, b"x" * 300) for i in range(10, 30)))
    assert [json.loads(await wire.next())["id"] for _ in range(4)] == [0, 1, 2, 3]
    await wire.not_now()
    assert 1000 <= wire.lines._held_bytes < 1400 and len(wire.lines._held) == 3  # then stdin is not read
    await wire.answer(0)
    assert json.loads(await wire.next())["id"] == 10


async def test_a_request_carrying_a_result_or_an_error_is_refused_not_counted(wire: _Wire) -> None:
    wire.send(
        b'{"jsonrpc": "2.0", "id": 5, "method": "ping", "error": {"code": 1, "message": "x"}}\n'
        b'{"jsonrpc": "2.0", "id": 6, "method": "ping", "result": {}}\n' + _request(9)
    )
    assert json.loads(await wire.next())["id"] == 9
    assert wire.writer.running == 1
    refused = wire.answers()
    assert [(a["id"], a["error"]["code"]) for a in refused] == [(5, -32600), (6, -32600)]


async def test_the_end_of_input_with_requests_held_and_no_call_ending(
    wire: _Wire, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The held requests get the SDK's "Connection closed" and count as given up, after the grace."""
    monkeypatch.setattr(stdio, "EOF_GRACE", 0.3)
    wire.send(b"".join(_request(i) for i in range(6)))
    assert [json.loads(await wire.next())["id"] for _ in range(4)] == [0, 1, 2, 3]
    os.close(wire.write_end)
    with anyio.fail_after(10), pytest.raises(StopAsyncIteration):
        await wire.lines.__anext__()
    assert wire.writer.given_up == 2 + 4  # the two held, then the four running
    assert [(a["id"], a["error"]["message"]) for a in wire.answers()] == [
        (4, "Connection closed"),
        (5, "Connection closed"),
    ]


async def test_the_end_of_input_with_requests_held_runs_them_as_calls_end(wire: _Wire) -> None:
    wire.send(b"".join(_request(i) for i in range(6)))
    assert [json.loads(await wire.next())["id"] for _ in range(4)] == [0, 1, 2, 3]
    os.close(wire.write_end)
    await wire.not_now()
    await wire.answer(1)
    assert json.loads(await wire.next())["id"] == 4
    await wire.answer(0)
    assert json.loads(await wire.next())["id"] == 5
    for i in (2, 3, 4, 5):
        await wire.answer(i)
    with anyio.fail_after(10), pytest.raises(StopAsyncIteration):
        await wire.lines.__anext__()
    assert wire.writer.given_up == 0


async def test_a_cancel_with_a_null_id_drops_the_held_request_it_names(wire: _Wire) -> None:
    """The SDK takes {"id": null, "method": "notifications/cancelled"} for a cancel: so does the hold."""
    null_cancel = b'{"jsonrpc": "2.0", "id": null, "method": "notifications/cancelled", "params": {"requestId": 4}}\n'
    wire.send(b"".join(_request(i) for i in range(6)) + null_cancel)
    assert [json.loads(await wire.next())["id"] for _ in range(4)] == [0, 1, 2, 3]
    assert json.loads(await wire.next())["method"] == "notifications/cancelled"
    await wire.answer(0)
    assert json.loads(await wire.next())["id"] == 5  # 4 was dropped


async def test_with_the_hold_full_the_end_of_input_is_still_seen(wire: _Wire, monkeypatch: pytest.MonkeyPatch) -> None:
    """Calls that never end (subscriptions) and a full hold: once the client closes stdin, what is left is read and
    the end is seen, so the process does not outlive its client."""
    monkeypatch.setattr(stdio, "MAX_HELD", 2)
    monkeypatch.setattr(stdio, "EOF_GRACE", 0.3)
    wire.send(b"".join(_request(i) for i in range(7)))  # 4 run, 2 held, the 7th is not read
    assert [json.loads(await wire.next())["id"] for _ in range(4)] == [0, 1, 2, 3]
    await wire.not_now()
    os.close(wire.write_end)
    with anyio.fail_after(10), pytest.raises(StopAsyncIteration):
        await wire.lines.__anext__()
    assert wire.writer.given_up == 3 + 4
    assert sorted(a["id"] for a in wire.answers()) == [4, 5, 6]

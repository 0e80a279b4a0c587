"""MCP over stdio, with a bounded request line and a prompt exit.

- A request line longer than ``Settings.stdio_line_limit`` bytes (``AGNT_TRACES_STDIO_MAX_LINE_BYTES``,
  default the HTTP body limit) is read no further than the limit (the rest is discarded as it streams
  in), answered with a JSON-RPC -32600 error (with the request's id when it appears before ``params``),
  and the server keeps serving.
- Every line is checked before the SDK sees it (``jsonlimits.screen_rpc_line``): a line that is not JSON gets a
  -32700 answer (the SDK would drop it silently and the client would wait forever); nesting over the
  limit, non-finite numbers and lone surrogates get ``invalid_argument``. So do the other messages the SDK
  would drop without an answer: a batch, an id that is not a string or an integer, a wrong ``jsonrpc``,
  ``method`` or ``params`` (-32600 / -32602).
- stdin is read on a daemon thread that never holds up the exit (and never changes the descriptor's
  blocking mode, which a terminal or a pipe shared with other processes would keep; a descriptor the client
  made non-blocking is waited on all the same); the lines of each read are handed over together, and at
  most two reads' worth of request lines wait to be handled before it stops reading.
- stdout is written by a thread of its own. A client that does not read its answers is not read either
  once ``_BACKLOG`` bytes of answers wait for it: memory stays bounded, the client's writes block.
- At most ``MAX_IN_FLIGHT`` requests run at once (each is a task of the SDK's), matched to their answers and
  cancels as the SDK matches ids ("7" and 7 are one); a request whose id is that of one running or held is
  refused (-32600: the SDK would give it the other's answer or cancel). Past it, requests are held, in order
  (as lines, not parsed), and stdin is read on: notifications (a cancel too: a held request it names is
  dropped) go on; past ``MAX_HELD`` held requests or ``HELD_BYTES`` of them, stdin is not read until a call
  ends. A client that writes thousands of requests at once is read as they are answered. A message with a
  method and a ``result`` or ``error`` is refused (-32600): the SDK would take it for an answer and drop it.
- End of stdin: requests already read are answered (the SDK would cancel them at once) as long as one of them
  is answered at least every ``EOF_GRACE`` seconds, or their answers are being read; then the answers are
  written while the client reads them, and the process exits, so ``agnt-traces serve < requests.jsonl``
  answers them all. Requests left after ``EOF_GRACE`` seconds without an answer (while no answer waits for
  the client to read it), running or held, are cancelled (answered "Connection closed", or not at all when
  their call ended at that very moment: the SDK prefers no answer to two), said on stderr, and the exit
  status is 1. A request the client cancelled
  (``notifications/cancelled``) is not waited for. A client that has closed
  stdin and reads nothing for ``WRITE_STALL`` seconds is given up: exit status 1 and one line on stderr
  saying how many bytes of answers were not written (so is a stdout that fails: a full disk, a hung-up
  terminal). A client that closed its end of stdout: exit status 141, as any command writing into a closed
  pipe. A client that writes all its requests before reading any answer deadlocks once more than about
  256 KiB of requests wait to be read and more than the backlog of answers waits for it: read while writing.
- SIGINT / SIGTERM: in-flight calls are cancelled, the answers already made have ``SIGNAL_WRITE_GRACE``
  seconds to go out, the store is closed (a trace is written in one transaction: whole or not at all), and
  the process exits (130 / 143). If shutting down takes longer than ``SHUTDOWN_GRACE`` seconds the process
  exits anyway.
- One line on stderr once the store is open: ``agnt-traces: serving MCP over stdio (db …, tenant …)``.
- The handshake first: the store is opened (tens of ms: the records it reads, its migrations) once the answer
  to ``initialize`` (or ``server/discover``) is written, or after ``OPEN_IF_IDLE`` seconds without one; tools,
  resources and prompts are registered (about 0.1 s of CPU) once it is open, before any other message reaches
  the SDK. The handshake's answers depend on neither; the client's next request waits for them instead. A
  store that cannot be opened ends the server as before: ``error: …`` on stderr, exit status 2 (the
  ``--db`` path itself is checked before anything starts); so does the end of input before the store opened
  (``serve < /dev/null`` still creates and migrates a new database). A signal while the opening waits on
  SQLite (another process holding the database: it cannot be interrupted) ends the process within
  ``SIGNAL_WRITE_GRACE`` seconds and a half with the signal's status.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import io
import json
import os
import re
import select
import signal
import stat
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
from mcp.shared.dispatcher import coerce_request_id
from mcp_types import CONNECTION_CLOSED

from ..config import Settings
from ..dburls import describe_url
from ..errors import InvalidArgument
from ..gcpolicy import serving, settle
from ..jsonlimits import INVALID_PARAMS, INVALID_REQUEST, RpcRejection, recover_id, rejection, screen_rpc_line

__all__ = ["SHUTDOWN_GRACE", "WireLost", "serve_stdio"]

# What a shell reports for a process killed by SIGPIPE (128 + 13), as the command line does.
BROKEN_PIPE_EXIT = 141

SHUTDOWN_GRACE = 4.0
EOF_GRACE = 4.0  # seconds without an answer after which the requests in flight at the end of stdin are given up
# Requests handed to the SDK and not yet answered: past it, the next requests are held (notifications and answers
# to the server's own requests go on). Each is a task of the SDK's; memory and the end of input stay bounded.
MAX_IN_FLIGHT = 64
MAX_HELD = 64  # requests held while MAX_IN_FLIGHT run: past it, stdin is not read until one ends ...
HELD_BYTES = 1 << 22  # ... nor past this many bytes of held request lines
# After the end of stdin, answers are written as long as the client reads them; one that reads nothing for this
# many seconds is given up (exit status 1, and a line on stderr saying how much was not written).
WRITE_STALL = 30.0
_STALLED = f"the client read no answer for {WRITE_STALL:.0f} s after its requests ended"
BACKLOG_HINT_AFTER = 10.0  # seconds of waiting for a client to read, before saying so on stderr (once)
SIGNAL_WRITE_GRACE = 1.0  # seconds the answers already made may take to go out after SIGINT / SIGTERM
OPEN_IF_IDLE = 0.2  # seconds without a request after which the store is opened all the same
# How the SDK writes an answer (a response or an error) to one of the client's requests.
_ANSWER = re.compile(r'\{"jsonrpc":"2\.0","id":(-?[0-9]+|"(?:[^"\\]|\\.)*"),"(?:result|error)":')
_CHUNK = 1 << 16
_BACKLOG = 1 << 22  # bytes of answers that may wait for a client that does not read them


@dataclass(frozen=True, slots=True)
class _TooLong:
    head: bytes  # the first bytes of the line, to find the request id in
    size: int  # how many bytes were read before giving up (at least the limit)


_EOF = object()
_HEAD = 4096  # bytes kept of an over-long line, to find its request id in
_BOM = b"\xef\xbb\xbf"


class _WaitingReads(io.RawIOBase):
    """Reads of a file descriptor that wait for data, also when the client made it non-blocking (the mode
    belongs to the pipe, shared by both processes; a plain read would then find "no data yet" and stop)."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd
        self._readable = select.poll()  # poll, not select: no limit on the descriptor's number
        self._readable.register(fd, select.POLLIN)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while True:
            try:
                return os.readv(self._fd, [buffer])
            except BlockingIOError:
                self._readable.poll()


def _input_ended_probe(fd: int) -> Callable[[], bool]:
    if stat.S_ISREG(os.fstat(fd).st_mode):
        return lambda: True
    probe = select.poll()
    probe.register(fd, select.POLLRDHUP)  # POLLHUP (a pipe without a writer) is always reported

    def ended() -> bool:
        return any(events & (select.POLLHUP | select.POLLRDHUP) for _, events in probe.poll(0))

    return ended


class _LineReader:
    """Lines from a file descriptor, read on a daemon thread; never more than ``limit`` bytes held of a line.

    The thread hands over the lines of each read together (a client that writes several requests at once costs
    one wake-up of the event loop and one of the thread, not one each per line), and holds at most two such
    batches for the loop before it stops reading: at most two reads of ``_CHUNK`` bytes, or the lines they end."""

    def __init__(self, fd: int, limit: int) -> None:
        self.limit = limit
        self._head = min(_HEAD, limit + 1)  # bytes kept of an over-long line (as read up to the limit)
        self._raw = _WaitingReads(fd)
        self._queue: asyncio.Queue[list[Any]] = asyncio.Queue()
        self._ready: collections.deque[Any] = collections.deque()  # handed over, not yet taken by next()
        self._room = threading.Semaphore(2)  # backpressure: at most two batches waiting
        self._loop = asyncio.get_running_loop()
        self._ended = _input_ended_probe(fd)
        threading.Thread(target=self._run, name="agnt-traces-stdin", daemon=True).start()

    def client_done_writing(self) -> bool:
        """The client has closed its end of stdin (requests may still wait in it, unread): what is already a
        file, or a pipe or socket without a writer."""
        return self._ended()

    def _put(self, batch: list[Any]) -> None:
        self._room.acquire()
        with contextlib.suppress(RuntimeError):  # RuntimeError: the loop is closed, the server is gone
            self._loop.call_soon_threadsafe(self._queue.put_nowait, batch)

    def _run(self) -> None:
        buffer = bytearray(_CHUNK)
        view = memoryview(buffer)
        partial = bytearray()  # the start of a line whose end has not been read yet (at most `limit` bytes)
        too_long: _TooLong | None = None  # a line over the limit, being discarded as it streams in
        batch: list[Any] = []
        try:
            while True:
                n = self._raw.readinto(view)
                if not n:
                    break
                chunk = bytes(view[:n])
                start = 0
                if too_long is not None:
                    end = chunk.find(b"\n")
                    if end < 0:
                        too_long = _TooLong(too_long.head, too_long.size + n)
                        continue
                    batch.append(_TooLong(too_long.head, too_long.size + end + 1))
                    too_long, start = None, end + 1
                while (end := chunk.find(b"\n", start)) >= 0:
                    if partial:
                        partial += chunk[start : end + 1]
                        line = bytes(partial)
                        partial.clear()
                    else:
                        line = chunk[start : end + 1]
                    # As ``readline(limit + 1)``: a line of more than `limit` bytes before its newline is too long.
                    batch.append(line if len(line) <= self.limit + 1 else _TooLong(line[: self._head], len(line)))
                    start = end + 1
                partial += chunk[start:]
                if len(partial) > self.limit:
                    too_long = _TooLong(bytes(partial[: self._head]), len(partial))
                    partial.clear()
                if batch:
                    self._put(batch)
                    batch = []
        except (OSError, ValueError):
            pass
        if too_long is not None:
            batch.append(too_long)
        elif partial:
            batch.append(bytes(partial))  # the last line, without its newline
        batch.append(_EOF)
        self._put(batch)

    async def next(self) -> Any:
        if not self._ready:
            self._ready.extend(await self._queue.get())
            self._room.release()
        return self._ready.popleft()


class WireLost(Exception):
    """stdout takes no more answers: the client closed it (``broken_pipe``), writing to it failed, or, after
    the end of stdin, the client read nothing for ``WRITE_STALL`` seconds."""

    def __init__(self, reason: str, *, broken_pipe: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.broken_pipe = broken_pipe

    @classmethod
    def of(cls, exc: OSError) -> WireLost:
        if isinstance(exc, BrokenPipeError | ConnectionResetError):
            return cls("the client closed its end of stdout", broken_pipe=True)
        return cls(f"cannot write answers to stdout ({exc.strerror or type(exc).__name__})")


class _LineWriter:
    """The SDK's ``stdout``: whole lines, in the order they were written, written by a daemon thread of its
    own. ``flush`` hands the lines over and returns: the event loop never waits for the pipe (a client that
    stops reading blocks that thread, not the loop), answers that come while a write is under way go out
    together in the next one, and the loop is not woken when a write is done. At most ``_BACKLOG`` bytes wait
    for the thread; past that, ``flush`` waits (cancellably, without blocking the loop) until the client has
    read some, and so does the reading of requests (:meth:`room`): a client that does not read its answers
    stops being read, so memory stays bounded. An answer of at most ``PIPE_BUF`` bytes into a pipe with room
    for it and nothing queued before it is written by ``flush`` itself: such a write cannot block, and it
    spares a wake of the thread. A failed write, or a client that reads nothing for ``WRITE_STALL`` seconds
    once its input has ended, raises :class:`WireLost` from every later flush."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._line = bytearray()  # written, not yet flushed (the SDK writes, then flushes)
        self._pending = bytearray()  # flushed, not yet written to the pipe
        self._cond = threading.Condition()
        self._writing = 0  # bytes the thread took and has not written yet
        self._closing = False
        self._failed: WireLost | None = None
        self._loop = asyncio.get_running_loop()
        self._room_waiter: anyio.Event | None = None  # set (on the loop) when the backlog is under the bound
        self._progress_at = time.monotonic()  # when a byte was last written
        self._hinted = False  # said on stderr that answers wait for the client
        # The client's input has ended (read to its end, or closed with requests still unread in it): from then
        # on, a client that reads nothing for WRITE_STALL seconds is given up.
        self.input_ended: Callable[[], bool] = lambda: False
        # Requests handed to the SDK and not yet answered, by id as the SDK matches ids ("7" and 7 are one; a
        # request reusing the id of one in flight is refused before it gets here).
        self._running: set[int | str] = set()
        self.on_first_answer: Callable[[], None] | None = None  # called once, when the SDK writes its first answer
        self._slot_waiter: anyio.Event | None = None  # set when a request is answered, if awaited (fewer_than)
        self.given_up = 0  # requests still unanswered when the end-of-input grace ran out (the SDK cancels them)
        # Small answers go straight into a pipe that has room (see flush); a terminal, a socket or a file
        # always goes through the thread.
        mode = os.fstat(fd).st_mode
        self._to_pipe = stat.S_ISFIFO(mode)
        # The thread writes a pipe, a socket or a terminal PIPE_BUF bytes at a time: such a write returns as soon
        # as the client has read that much, so a client that reads slowly is seen making progress (one big
        # blocking write would return only once the client had read nearly all of it).
        self._chunk = 1 << 20 if stat.S_ISREG(mode) else select.PIPE_BUF
        # One poll for flush, one for the thread (a poll object is not for two threads at once); poll, not
        # select: no limit on the descriptor's number.
        self._writable, self._writable_for_thread = select.poll(), select.poll()
        self._writable.register(fd, select.POLLOUT)
        self._writable_for_thread.register(fd, select.POLLOUT)
        self._thread = threading.Thread(target=self._run, name="agnt-traces-stdout", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if not self._pending:
                    return
                data = bytes(self._pending)
                self._pending.clear()
                self._writing = len(data)
            try:
                view = memoryview(data)
                while view:
                    try:
                        view = view[os.write(self._fd, view[: self._chunk]) :]
                    except BlockingIOError:  # the client made the pipe non-blocking: wait for room, as a write would
                        self._writable_for_thread.poll()
                        continue
                    with self._cond:
                        self._writing = len(view)
                        self._progress_at = time.monotonic()
                        self._wake_room_waiter()
            except OSError as exc:  # the client closed its end, or the write failed: nothing more can be answered
                with self._cond:
                    self._failed = self._failed or WireLost.of(exc)
                    self._wake_room_waiter()
                return

    def _backlogged(self) -> bool:
        return len(self._pending) + self._writing > _BACKLOG

    def _wake_room_waiter(self) -> None:
        """With ``_cond`` held: tell whoever waits for room (on the loop) that there is some, or a failure."""
        if self._room_waiter is not None and (self._failed is not None or not self._backlogged()):
            waiter, self._room_waiter = self._room_waiter, None
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                self._loop.call_soon_threadsafe(waiter.set)

    def _idle_since(self, started: float) -> float:
        """Seconds without a byte written, counted from ``started`` at the earliest (when a wait began)."""
        return time.monotonic() - max(started, self._progress_at)

    @property
    def failure(self) -> WireLost | None:
        """Why stdout takes no more answers, once it does not."""
        return self._failed

    @property
    def undelivered(self) -> int:
        """Bytes of answers flushed and not (yet) written."""
        with self._cond:
            return len(self._pending) + self._writing

    async def room(self) -> None:
        """Return once at most ``_BACKLOG`` bytes wait for the client (at once, mostly). Cancellable; raises
        :class:`WireLost` if stdout failed, or if the input has ended and the client has read nothing for
        ``WRITE_STALL`` seconds."""
        started = time.monotonic()
        while True:
            with self._cond:
                if self._failed is not None:
                    raise self._failed
                if not self._backlogged():
                    return
                if self._room_waiter is None:
                    self._room_waiter = anyio.Event()
                waiter = self._room_waiter
            with anyio.move_on_after(1.0):
                await waiter.wait()
            if not self._hinted and time.monotonic() - started > BACKLOG_HINT_AFTER:
                self._hinted = True
                print(
                    f"agnt-traces: {self.undelivered} bytes of answers wait for the client to read them; no more "
                    "requests are read until it does (a client must read answers while it writes requests)",
                    file=sys.stderr,
                    flush=True,
                )
            if self.input_ended() and self._idle_since(started) > WRITE_STALL:
                with self._cond:
                    self._failed = self._failed or WireLost(_STALLED)

    async def write(self, text: str) -> None:
        if self.running and (match := _ANSWER.match(text)) is not None:
            with contextlib.suppress(ValueError):
                self.answered(json.loads(match.group(1)))
            if self.on_first_answer is not None:
                first, self.on_first_answer = self.on_first_answer, None
                first()
        self._line += text.encode("utf-8")

    @property
    def running(self) -> int:
        """How many requests handed to the SDK wait for their answers."""
        return len(self._running)

    def asked(self, request_id: int | str) -> None:
        """The SDK was handed a request with this id: it will answer it (unless the client cancels it)."""
        self._running.add(coerce_request_id(request_id))

    def answered(self, request_id: Any) -> None:
        """The request with this id is answered, or was cancelled by the client (then the SDK does not answer
        it). A cancel for a call already answered changes nothing."""
        key = coerce_request_id(request_id) if _valid_id(request_id) else None
        if key not in self._running:
            return
        self._running.discard(key)
        if self._slot_waiter is not None:
            self._slot_waiter.set()
            self._slot_waiter = None

    def is_running(self, key: int | str) -> bool:
        """A request with this id (as the SDK matches ids: ``coerce_request_id``) waits for its answer."""
        return key in self._running

    async def fewer_than(self, limit: int) -> None:
        """Return once fewer than ``limit`` requests wait for their answers (at once, mostly). Cancellable."""
        while self.running >= limit:
            if self._slot_waiter is None:
                self._slot_waiter = anyio.Event()
            await self._slot_waiter.wait()

    async def fewer_than_within(self, limit: int, grace: float) -> bool | None:
        """:meth:`fewer_than`, as long as a request is answered at least every ``grace`` seconds, or answers wait
        for the client to read them (then the client is slow, not the calls: it gets ``WRITE_STALL`` seconds
        without reading). True once fewer than ``limit`` wait; False when the calls made no progress for
        ``grace`` seconds; None when stdout failed or the client read nothing for ``WRITE_STALL`` seconds."""
        started = time.monotonic()
        deadline = started + grace
        left = self.running
        while self.running >= limit:
            with anyio.move_on_after(0.25):
                await self.fewer_than(limit)
            now = time.monotonic()
            if self._failed is not None:
                return None
            if self.running < left:  # calls are being answered: give the others time too
                left = self.running
                deadline = now + grace
            if self._backlogged():  # the answers wait for the client to read them, not for their calls
                if self._idle_since(started) > WRITE_STALL:
                    return None
                deadline = now + grace
            elif now >= deadline and self.running >= limit:
                return False
        return True

    async def wait_for_answers(self, grace: float) -> None:
        """Wait until every request handed to the SDK is answered or cancelled, as long as one is answered at
        least every ``grace`` seconds (a file of requests is answered whole however long it takes); then count
        in ``given_up`` those left."""
        if await self.fewer_than_within(1, grace) is False:
            self.given_up += self.running

    async def flush(self) -> None:
        data = bytes(self._line)
        self._line.clear()
        with self._cond:
            if self._failed is not None:
                raise self._failed
            if self._to_pipe and not self._pending and not self._writing and len(data) <= select.PIPE_BUF:
                # Nothing waits before it and the pipe has room for it (writable: at least PIPE_BUF bytes free),
                # so this write cannot block: done here, at once. Waking the writer thread for it costs more
                # (a wake on another CPU, then the interpreter lock handed back and forth).
                data = self._write_now(data)
                if not data:
                    return
            self._pending += data
            self._cond.notify()
            backlog = self._backlogged()
        if backlog:
            await self.room()

    def _write_now(self, data: bytes) -> bytes:
        """What is left of ``data`` after writing it if the pipe has room now (with ``_cond`` held)."""
        try:
            if not self._writable.poll(0):
                return data
            left = data[os.write(self._fd, data) :]
        except BlockingIOError:  # a non-blocking pipe that filled up meanwhile (another writer): the thread waits
            return data
        except OSError as exc:  # the client closed its end, or the write failed: nothing more can be answered
            self._failed = WireLost.of(exc)
            raise self._failed from None
        self._progress_at = time.monotonic()
        return left

    async def send(self, message: dict[str, Any]) -> None:
        self._line += (json.dumps(message, ensure_ascii=False) + "\n").encode("utf-8")
        await self.flush()

    async def aclose(self, stall: float, *, within: float | None = None) -> int:
        """Let the thread write what is pending and stop, as long as the client reads: once it has read
        nothing for ``stall`` seconds (or ``within`` seconds have passed, if given), stop waiting. Returns how
        many bytes were not written."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        started = time.monotonic()
        while self._thread.is_alive() and self._failed is None:
            await anyio.to_thread.run_sync(self._thread.join, min(0.2, stall))
            if self._idle_since(started) >= stall or (within is not None and time.monotonic() - started >= within):
                break
        return 0 if not self._thread.is_alive() and self._failed is None else self.undelivered


_HANDSHAKE = frozenset({"initialize", "server/discover"})


def _is_handshake(line: bytes) -> bool:
    try:
        message = json.loads(line)
    except ValueError:
        return False
    return _is_handshake_message(message)


def _valid_id(value: Any) -> bool:
    return isinstance(value, int | str) and not isinstance(value, bool)


def _malformed(message: Any) -> RpcRejection | None:
    """An answer to a message the SDK would drop without one (the client would wait for ever): a batch, a
    request whose id is not a string or an integer, or whose ``jsonrpc``, ``method`` or ``params`` is wrong.
    None for anything else (the SDK answers it, or it needs no answer)."""
    if isinstance(message, list):
        err = InvalidArgument("JSON-RPC batches are not part of MCP: send one message per line")
        return rejection(None, None, err, code=INVALID_REQUEST)
    if not isinstance(message, dict) or "method" not in message:
        return None  # a response to a request of ours, or no message at all: the SDK's to judge
    request_id = message.get("id")
    if request_id is not None and not _valid_id(request_id):
        err = InvalidArgument("the request's id must be a string or an integer", {"field": "id"})
        return rejection(None, None, err, code=INVALID_REQUEST)
    method = message["method"] if isinstance(message["method"], str) else "?"  # "?": a notification all the same
    if message.get("jsonrpc") != "2.0":
        problem, field, code = '"jsonrpc" must be "2.0"', "jsonrpc", INVALID_REQUEST
    elif "result" in message or "error" in message:  # the SDK would take it for an answer, and drop it
        kind = "result" if "result" in message else "error"
        problem, field, code = f"a request carries no {kind!r}: send it without", kind, INVALID_REQUEST
    elif not isinstance(message["method"], str):
        problem, field, code = "the method must be a string", "method", INVALID_REQUEST
    elif message.get("params") is not None and not isinstance(message["params"], dict):
        problem, field, code = "params must be an object", "params", INVALID_PARAMS
    else:
        return None
    # A JSON-RPC error even for tools/call (its envelope is wrong, not its arguments); a notification gets none.
    return rejection(
        request_id, None if request_id is not None else method, InvalidArgument(problem, {"field": field}), code=code
    )


def _is_handshake_message(message: Any) -> bool:
    return isinstance(message, dict) and message.get("method") in _HANDSHAKE


class _ScreenedStdin:
    """The SDK's ``stdin``: ``async for line in stdin`` yields only lines fit for it; the others are answered
    here. ``before_requests`` runs once, before the first line that is not a handshake request is yielded."""

    def __init__(
        self,
        reader: _LineReader,
        writer: _LineWriter,
        before_requests: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._before_requests = before_requests
        self._held: collections.deque[_Request] = collections.deque()  # requests waiting to run, in order
        self._held_keys: set[int | str] = set()
        self._held_bytes = 0
        self._input_ended = False

    def __aiter__(self) -> _ScreenedStdin:
        return self

    async def __anext__(self) -> str:
        while True:
            if self._held and self._writer.running < MAX_IN_FLIGHT:
                return await self._hand_over(self._unhold())
            if self._input_ended:
                if self._held:  # requests read before the end wait for a call to end, as calls are waited for
                    if await self._writer.fewer_than_within(MAX_IN_FLIGHT, EOF_GRACE):
                        continue
                    # No call ended for EOF_GRACE seconds: the held requests are not run, and the calls running
                    # have had their grace (the SDK cancels them as the input ends).
                    await self._give_up_held()
                    self._writer.given_up += self._writer.running
                    raise StopAsyncIteration
                # The SDK cancels the requests still in flight when its input ends: let them be answered (a
                # client that wrote its requests and closed stdin reads every answer).
                await self._writer.wait_for_answers(EOF_GRACE)
                raise StopAsyncIteration
            item = await self._next_line()
            if item is None:  # a call ended: a held request may go
                continue
            if item is _EOF:
                self._input_ended = True
                continue
            if isinstance(item, _TooLong):
                limit = self._reader.limit
                err = InvalidArgument(
                    f"request line is longer than {limit} bytes (the limit, AGNT_TRACES_STDIO_MAX_LINE_BYTES): "
                    "it was discarded; send smaller messages (e.g. smaller trace batches) or raise the limit",
                    {"limit": limit},
                )
                refused = rejection(recover_id(item.head), None, err, code=INVALID_REQUEST)
                if refused.response is not None:
                    await self._writer.send(refused.response)
                continue
            if item.startswith(_BOM):  # as some Windows tools start their output: not part of the message
                item = item[len(_BOM) :]
            if not item.strip():
                continue
            refused_line, message = screen_rpc_line(item)
            if refused_line is not None:
                if refused_line.response is not None:
                    await self._writer.send(refused_line.response)
                continue
            malformed = _malformed(message)
            if malformed is not None:
                if malformed.response is not None:
                    await self._writer.send(malformed.response)
                continue
            await self._writer.room()  # a client that does not read its answers is not read either
            request = _Request.of(message, item) if _is_request(message) else None
            if request is not None:
                if self._writer.is_running(request.key) or request.key in self._held_keys:
                    await self._writer.send(_duplicate(request.id))
                    continue
                if self._held or self._writer.running >= MAX_IN_FLIGHT:
                    self._hold(request)  # MAX_IN_FLIGHT calls run: it waits for one to end
                    continue
                return await self._hand_over(request)
            if _is_cancel(message):
                cancelled = message["params"]["requestId"]
                self._drop_held(cancelled)
                self._writer.answered(cancelled)  # the SDK gives a call the client cancelled no answer
            await self._set_up_before(message)
            return str(item.decode("utf-8", "replace"))

    async def _next_line(self) -> Any:
        """The next item from stdin; with requests held, None as soon as a call ends, if that comes first (and
        only None once ``MAX_HELD`` requests are held: stdin is not read further meanwhile, unless the client
        has closed it)."""
        if not self._held:
            return await self._reader.next()
        if len(self._held) >= MAX_HELD or self._held_bytes >= HELD_BYTES:
            while not self._reader.client_done_writing():
                with anyio.move_on_after(0.5):
                    await self._writer.fewer_than(MAX_IN_FLIGHT)
                    return None
            # The client has closed stdin: what is left to read is bounded (what its pipe holds), and the end
            # of input must be seen (calls that never end, e.g. subscriptions, would hold the process for ever).
            return await self._reader.next()
        got: list[Any] = []
        async with anyio.create_task_group() as tg:

            async def read() -> None:
                got.append(await self._reader.next())  # cancel-safe: an item is taken whole or not at all
                tg.cancel_scope.cancel()

            async def call_ended() -> None:
                await self._writer.fewer_than(MAX_IN_FLIGHT)
                tg.cancel_scope.cancel()

            tg.start_soon(read)
            tg.start_soon(call_ended)
        return got[0] if got else None

    async def _hand_over(self, request: _Request) -> str:
        self._writer.asked(request.id)
        await self._set_up_before({"method": request.method})
        return str(request.line.decode("utf-8", "replace"))

    async def _set_up_before(self, message: Any) -> None:
        """``before_requests``, once, before the first message that is not a handshake request reaches the SDK."""
        if self._before_requests is not None and not _is_handshake_message(message):
            setup, self._before_requests = self._before_requests, None
            await setup()

    def _hold(self, request: _Request) -> None:
        self._held.append(request)
        self._held_keys.add(request.key)
        self._held_bytes += len(request.line)

    def _unhold(self) -> _Request:
        request = self._held.popleft()
        self._held_keys.discard(request.key)
        self._held_bytes -= len(request.line)
        return request

    def _drop_held(self, request_id: Any) -> None:
        """A request the client cancelled before it could run is not run (nor answered, as the SDK does)."""
        if not _valid_id(request_id):
            return
        key = coerce_request_id(request_id)
        if key in self._held_keys:
            for request in list(self._held):
                if request.key == key:
                    self._held.remove(request)
                    self._held_bytes -= len(request.line)
            self._held_keys.discard(key)

    async def _give_up_held(self) -> None:
        """The end of input, and no call ended for ``EOF_GRACE`` seconds: the requests held are not run; each
        gets the error the SDK gives the calls it cancels."""
        held, self._held = self._held, collections.deque()
        self._held_keys.clear()
        self._held_bytes = 0
        self._writer.given_up += len(held)
        for request in held:
            await self._writer.send(
                {
                    "jsonrpc": "2.0",
                    "id": request.id,
                    "error": {"code": CONNECTION_CLOSED, "message": "Connection closed"},
                }
            )


@dataclass(frozen=True, slots=True)
class _Request:
    """A request line as it is held or handed on: its id, the id as the SDK matches it, its method and the line
    (not the parsed message: a held line of the limit's length could parse into far more memory)."""

    id: int | str
    key: int | str
    method: str
    line: bytes

    @classmethod
    def of(cls, message: dict[str, Any], line: bytes) -> _Request:
        return cls(message["id"], coerce_request_id(message["id"]), message["method"], line)


def _duplicate(request_id: int | str) -> dict[str, Any]:
    """The answer to a request whose id is that of one still running or held: the SDK would give the other's
    answer or cancel to one of them (MCP: an id is never reused while in flight)."""
    err = InvalidArgument(
        f"a request with id {request_id!r} is still in flight: give each request its own id "
        '(1 and "1" count as the same)',
        {"field": "id"},
    )
    return rejection(request_id, None, err, code=INVALID_REQUEST).response or {}


def _is_request(message: Any) -> bool:
    return isinstance(message, dict) and "method" in message and message.get("id") is not None


def _is_cancel(message: Any) -> bool:
    return (
        isinstance(message, dict)
        and message.get("method") == "notifications/cancelled"
        and message.get("id") is None
        and isinstance(message.get("params"), dict)
        and "requestId" in message["params"]
    )


def _claim_std_fds() -> tuple[int, int]:
    """Private copies of stdin and stdout for the protocol; fd 0 then reads /dev/null and fd 1 goes to
    stderr, so a stray print (ours, a library's, a child's) cannot corrupt the wire."""
    wire_in, wire_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    return wire_in, wire_out


def _exit_if_stuck(grace: float, status: int = 1) -> None:
    def watchdog() -> None:
        threading.Event().wait(grace)
        if status == 1:
            print("agnt-traces: shutdown took too long; exiting", file=sys.stderr, flush=True)
        os._exit(status)

    threading.Thread(target=watchdog, name="agnt-traces-shutdown", daemon=True).start()


async def serve_stdio(settings: Settings) -> int:
    """Serve MCP over this process's stdin/stdout until EOF or a signal; the exit status to return."""
    from mcp.server.stdio import stdio_server

    from .common import LateApp
    from .mcp import build_server_deferred
    from .sdk_seams import lowlevel_server

    wire_in, wire_out = _claim_std_fds()
    signalled: list[int] = []
    lost: list[WireLost] = []
    refused: list[Exception] = []  # the store could not be opened
    undelivered = 0
    serving()
    late = LateApp()
    mcp, register_tools = build_server_deferred(settings, shared_app=lambda: late)
    server = lowlevel_server(mcp)
    reader = _LineReader(wire_in, settings.stdio_line_limit)
    writer = _LineWriter(wire_out)
    writer.input_ended = reader.client_done_writing
    open_now, opened, open_done = anyio.Event(), anyio.Event(), anyio.Event()
    opening = [False]  # the store is being opened (in SQLite's hands: it cannot be interrupted)
    writer.on_first_answer = open_now.set
    try:  # the App is closed outside the cancelled scope: a clean close
        async with anyio.create_task_group() as tg:

            async def on_signal() -> None:
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for signum in signals:
                        signalled.append(signum)
                        if opening[0]:
                            # An opening that waits on SQLite (another process holding the database) cannot be
                            # cancelled, and nothing is open yet to close: the answers made get their second,
                            # then the process ends as the signal asks.
                            _exit_if_stuck(SIGNAL_WRITE_GRACE + 0.5, status=128 + signum)
                        else:
                            _exit_if_stuck(SHUTDOWN_GRACE)
                        tg.cancel_scope.cancel()
                        return

            async def open_after_handshake() -> None:
                # Once the handshake is answered (or after OPEN_IF_IDLE s without an answer): opening the store
                # costs tens of ms (the records it reads, its queries), which the answer to `initialize` need not
                # wait for.
                with anyio.move_on_after(OPEN_IF_IDLE):
                    await open_now.wait()
                from ..app import start_app

                opening[0] = True
                try:
                    late.app = await start_app(settings)
                except Exception as exc:  # e.g. AGNT_TRACES_READERS out of range, a PostgreSQL that does not answer
                    refused.append(exc)  # raised below, as it was when the store was opened before serving
                    tg.cancel_scope.cancel()
                    return
                finally:
                    opening[0] = False
                    open_done.set()
                opened.set()
                print(
                    f"agnt-traces: serving MCP over stdio (db {describe_url(settings.db_path)}, "
                    f"tenant {settings.tenant}); Ctrl-C to stop",
                    file=sys.stderr,
                    flush=True,
                )

            async def before_requests() -> None:
                await opened.wait()  # a request sent right behind `initialize` waits for the store, not before it
                register_tools()
                settle()  # start-up's objects are kept for life: later collections skip them (gcpolicy)

            tg.start_soon(on_signal)
            tg.start_soon(open_after_handshake)
            try:
                stdin = _ScreenedStdin(reader, writer, before_requests)
                async with stdio_server(stdin=stdin, stdout=writer) as (read, write):  # type: ignore[arg-type]
                    await server.run(read, write, server.create_initialization_options())
            except* WireLost as group:
                lost.extend(_leaves(group))
            finally:
                with anyio.CancelScope(shield=True):  # the last answers, before the store closes
                    if lost:
                        undelivered = await writer.aclose(0)
                    elif signalled:  # the client asked us to stop: a second at most
                        undelivered = await writer.aclose(SIGNAL_WRITE_GRACE, within=SIGNAL_WRITE_GRACE)
                    else:
                        undelivered = await writer.aclose(WRITE_STALL)
            if not lost and writer.failure is not None:  # a write failed after the last flush
                lost.append(writer.failure)
            if not lost:
                # The end of input before the store opened (`serve < /dev/null`, `initialize` then EOF): it is
                # opened all the same, so a database that cannot be is said (and a new one is created) as ever.
                open_now.set()
                await open_done.wait()
            tg.cancel_scope.cancel()  # EOF: stop the signal watcher
    finally:
        if late.app is not None:
            with anyio.CancelScope(shield=True):
                await late.app.close()
    if refused and not signalled:
        raise refused[0]  # "error: …" and exit status 2 (a traceback if unexpected), as when opened before serving
    if signalled:
        return 130 if signalled[0] == signal.SIGINT else 143
    if any(failure.broken_pipe for failure in lost):
        return BROKEN_PIPE_EXIT  # the client went away: as any command writing into a closed pipe
    if lost or undelivered:
        reason = lost[0].reason if lost else _STALLED
        print(f"agnt-traces: {reason}; {undelivered} bytes of answers were not written", file=sys.stderr, flush=True)
        return 1
    if writer.given_up:
        print(
            f"agnt-traces: {writer.given_up} request(s) left when stdin ended were cancelled, as none was answered "
            f"for {EOF_GRACE:g} s (answered 'Connection closed', or not at all if their call ended just then)",
            file=sys.stderr,
            flush=True,
        )
        return 1
    return 0


def _leaves(group: BaseExceptionGroup[WireLost]) -> list[WireLost]:
    return [
        leaf for exc in group.exceptions for leaf in (_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    ]

"""Compiling prompts off the event loop, with a hard deadline.

The server is one asyncio event loop shared by every tenant, and a prompt template is untrusted code:
rendering it on the loop would stall every other request for as long as it runs. The compiler's own
limits (:mod:`agnt_traces.compiler`) are cooperative: they are checked in filters, calls, loops and
operators, but a single C-level call (sorting a big list, a regular expression, parsing a large
template) holds the GIL and cannot be interrupted. So compiles run in a small pool of worker processes:

* a request goes to an idle worker over a pipe; the loop waits for the answer with ``add_reader`` (no
  thread hop), so the round trip for a typical prompt costs ~0.1-0.2 ms;
* a worker that has not answered ``compiler.TIME_LIMIT + HARD_SLACK`` seconds after it was given the
  request is killed (SIGKILL) and replaced; the caller gets a ``CompileError``. Nothing a template does
  can outrun that, and the loop stays free the whole time;
* each worker keeps its own byte-bounded parse cache, and retires itself when its memory grows past
  ``AGNT_TRACES_COMPILE_WORKER_MAX_RSS`` bytes (a replacement is started), so memory stays bounded
  however many distinct large templates are compiled;
* a worker is a fresh interpreter started with ``subprocess`` (never a fork of the threaded server);
  starting one takes ~0.3 s of its own CPU, off the loop, and the pool starts them at server start.

``AGNT_TRACES_COMPILE_WORKERS`` (default 2) sets the pool size; ``0`` compiles in a thread instead
(cooperative deadline only).

A compile is a pure function of the content (named by its etag), the variables and the compiler's limits:
the result of one that succeeded is kept (:class:`_ResultCache`, byte-bounded, LRU) and the same content
with the same variables is answered from it without a worker round trip. Input messages are not part of
the key: they are only checked and appended after the blocks, which is done again on every call. Only
successful compiles are kept, so nothing a hostile template does ever skips the worker and its deadline.

Off the loop (the CLI, tests), call :func:`agnt_traces.compiler.compile_prompt` directly.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import pickle
import resource
import socket
import subprocess
import sys
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from . import compiler
from .compiler import CompileResult
from .compiler.values import check_input_messages
from .config import compile_limit
from .errors import AgntError, CompileError, InternalError, InvalidArgument
from .models import Block, ModelConfig, PromptContent, VariableDecl

__all__ = [
    "HARD_SLACK",
    "check_content_async",
    "compile_prompt_async",
    "shutdown",
]

log = logging.getLogger(__name__)

#: Seconds a worker may run past ``compiler.TIME_LIMIT`` (which it enforces itself, cooperatively)
#: before it is killed.
HARD_SLACK = 0.5
#: Seconds a new worker may take to start (import the compiler) on a very busy machine.
_START_TIMEOUT = 60.0
_ERRORS: dict[str, type[AgntError]] = {cls.code: cls for cls in (CompileError, InvalidArgument)}


def _pool_size() -> int:
    return int(compile_limit("AGNT_TRACES_COMPILE_WORKERS"))


def _max_worker_rss() -> int:
    return int(compile_limit("AGNT_TRACES_COMPILE_WORKER_MAX_RSS"))


# ---------------------------------------------------------------------------------------------------
# The worker process


_LIMIT_NAMES = ("TIME_LIMIT", "MAX_TEMPLATE_BYTES", "MAX_PROMPT_TEMPLATE_BYTES", "TEMPLATE_CACHE_BYTES")


def _limits() -> tuple[tuple[str, Any], ...]:
    return tuple((name, getattr(compiler, name)) for name in _LIMIT_NAMES)


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


# Prompt content crosses the pipe as plain tuples: pickling the pydantic models costs ~90 µs on the
# loop, plain tuples ~10 µs. The worker rebuilds the models without validating them again.
_Flat = tuple[Any, ...]


def _flatten(content: PromptContent) -> _Flat:
    model = content.model
    return (
        tuple((b.id, b.role, b.content, b.condition) for b in content.blocks),
        tuple((v.name, v.type, v.required, v.default, v.description) for v in content.variables),
        (model.provider, model.name, model.params),
        content.tools,
    )


def _unflatten(flat: _Flat) -> PromptContent:
    blocks, variables, (provider, name, params), tools = flat
    return PromptContent.model_construct(
        blocks=[Block.model_construct(id=i, role=r, content=c, condition=cond) for i, r, c, cond in blocks],
        variables=[
            VariableDecl.model_construct(name=n, type=t, required=req, default=d, description=desc)
            for n, t, req, d, desc in variables
        ],
        model=ModelConfig.model_construct(provider=provider, name=name, params=params),
        tools=tools,
    )


def _run(op: str, args: tuple[Any, ...]) -> Any:
    if args and isinstance(args[0], tuple):
        args = (_unflatten(args[0]), *args[1:])
    if op == "compile":
        result = compiler.compile_prompt(*args)
        return (result.manifest, result.messages, result.warnings, result.variables, result.block_messages)
    if op == "check":
        return compiler.check_content(*args)
    raise ValueError(f"unknown operation {op!r}")


def _serve(conn: Connection, max_rss: int) -> None:
    """A worker's main loop: one request in, one reply out, until the pipe closes. Each request carries the
    parent's compiler limits, so a worker enforces exactly what the parent is configured with."""
    with contextlib.suppress(ValueError, OSError):  # past this, allocation fails (MemoryError) instead of OOM
        resource.setrlimit(resource.RLIMIT_AS, (4 * max_rss, 4 * max_rss))
    while True:
        try:
            op, args, limits = conn.recv()
        except (EOFError, OSError):
            return
        for name, value in limits:
            setattr(compiler, name, value)
        reply: tuple[Any, ...]
        try:
            reply = ("ok", _run(op, args))
        except AgntError as exc:
            reply = ("error", exc.code, exc.message, exc.details)
        except Exception as exc:  # a compiler bug: reported as internal, never with its traceback
            reply = ("crash", type(exc).__name__)
        retire = _rss_bytes() > max_rss
        try:
            conn.send((*reply, retire))
        except (EOFError, OSError):
            return
        if retire:
            return


# ---------------------------------------------------------------------------------------------------
# The pool (parent side)


@dataclass(eq=False)
class _Worker:
    process: subprocess.Popen[bytes]
    conn: Connection

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()
        with contextlib.suppress(Exception):
            self.process.kill()
            self.process.wait(2)


_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
_BOOT = (
    "import sys; sys.path.insert(0, {root!r}); from agnt_traces.compile_pool import _worker_entry; _worker_entry({fd})"
)


def _spawn() -> _Worker:
    """Starts a worker: a fresh interpreter (``-I``: no environment, user site or current directory on the
    path) that imports this package from where the server imported it. Its stdout is not the server's
    (over stdio, that is the MCP protocol); its stderr is."""
    ours, theirs = socket.socketpair()
    try:
        fd = theirs.fileno()
        process = subprocess.Popen(
            [sys.executable, "-I", "-c", _BOOT.format(root=_PACKAGE_ROOT, fd=fd)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            pass_fds=(fd,),
            start_new_session=True,  # a Ctrl-C in the terminal stops the server, which stops its workers
        )
    finally:
        theirs.close()
    conn = Connection(ours.detach())
    worker = _Worker(process, conn)
    try:
        conn.send(_max_worker_rss())
        # Ready once it has imported the compiler: start-up time never counts against a compile's deadline.
        if not conn.poll(_START_TIMEOUT) or conn.recv() != "ready":
            raise OSError("the worker did not start")
    except (EOFError, OSError):
        worker.kill()
        log.error("a prompt compiler worker did not start")
        raise InternalError("the prompt compiler could not start; try again") from None
    return worker


def _worker_entry(fd: int) -> None:
    conn = Connection(fd)
    max_rss = conn.recv()
    conn.send("ready")
    _serve(conn, max_rss)


class _Pool:
    """Worker processes handed out one request at a time. Usable from any event loop (and from several):
    the bookkeeping is guarded by a thread lock, and a waiter is woken on its own loop."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._started = 0  # workers alive or being started
        self._closed = False
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[_Worker | None]]] = deque()
        self.kills = 0  # workers killed on their deadline (for tests and diagnostics)

    async def _acquire(self) -> _Worker:
        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                if self._idle:
                    return self._idle.pop()
                spawn = self._started < self.size
                if spawn:
                    self._started += 1
                else:
                    waiter: asyncio.Future[_Worker | None] = loop.create_future()
                    self._waiters.append((loop, waiter))
            if spawn:
                try:
                    return await asyncio.to_thread(_spawn)  # starting a process blocks for a few ms
                except BaseException:
                    self._lost(replace=False)
                    raise
            try:
                worker = await waiter
            except asyncio.CancelledError:
                handed = waiter.result() if waiter.done() and not waiter.cancelled() else None
                if handed is not None:
                    self._release(handed)  # handed over just as we were cancelled
                raise
            if worker is not None:
                return worker
            # None: a worker was lost and its slot is free; go round and start the replacement.

    def _wake_first(self, worker: _Worker | None) -> bool:
        """Gives ``worker`` (or None: "a slot is free") to the oldest live waiter; False if there is none.
        Call with the lock held."""
        while self._waiters:
            loop, waiter = self._waiters.popleft()
            if not waiter.done() and not loop.is_closed():
                loop.call_soon_threadsafe(self._hand_over, waiter, worker)
                return True
        return False

    def _release(self, worker: _Worker) -> None:
        """Hands ``worker`` to the oldest waiter still waiting, or makes it idle."""
        with self._lock:
            if self._closed:
                worker.kill()
            elif not self._wake_first(worker):
                self._idle.append(worker)

    def _hand_over(self, waiter: asyncio.Future[_Worker | None], worker: _Worker | None) -> None:
        if not waiter.done():
            waiter.set_result(worker)
        elif worker is not None:  # cancelled meanwhile: to the next one
            self._release(worker)
        else:
            with self._lock:
                self._wake_first(None)

    def _lost(self, *, replace: bool = True) -> None:
        """A worker is gone (killed, retired or never started). Its replacement starts right away on a
        thread, so the next request does not wait for an interpreter to start; if that fails, the slot is
        free and the next request tries again."""
        with self._lock:
            if not replace or self._closed:
                self._started -= 1
                self._wake_first(None)
                return
        threading.Thread(target=self._replace, name="agnt-traces-compiler-spawn", daemon=True).start()

    def _replace(self) -> None:
        try:
            worker = _spawn()
        except Exception:
            self._lost(replace=False)
            return
        self._release(worker)

    async def call(self, op: str, args: tuple[Any, ...], deadline: float) -> Any:
        """Runs ``op`` in a worker; kills the worker if it has not answered ``deadline`` seconds after it got
        the request.

        Raises:
            CompileError: the deadline passed.
            AgntError: what the compiler raised, rebuilt in this process.
        """
        for attempt in (1, 2):
            worker = await self._acquire()
            healthy = False
            try:
                reply = await self._round_trip(worker, (op, args, _limits()), deadline)
                healthy = not reply[-1]  # the worker retires itself when its memory grew too much
                break
            except TimeoutError:
                self.kills += 1
                raise self._timed_out() from None
            except (EOFError, OSError):
                if attempt == 2:
                    log.error("a prompt compiler worker died")
                    raise InternalError("the prompt compiler failed; try again") from None
                # An idle worker died (killed from outside, out of memory): once more with a fresh one.
            finally:
                if healthy:
                    self._release(worker)
                else:
                    worker.kill()
                    self._lost()
        status, *rest, _ = reply
        if status == "ok":
            return rest[0]
        if status == "error":
            code, message, details = rest
            raise _ERRORS.get(code, InternalError)(message, details)
        log.error("the prompt compiler raised %s", rest[0])
        raise InternalError("the prompt compiler failed on this prompt")

    @staticmethod
    def _timed_out() -> CompileError:
        problem = f"refused: compiling took longer than {compiler.TIME_LIMIT:g} seconds"
        return CompileError(
            f"compiling took longer than {compiler.TIME_LIMIT:g} seconds and was stopped; make loops smaller "
            "or the template simpler",
            {"problems": [{"block": None, "variable": None, "line": None, "problem": problem}]},
        )

    async def _round_trip(self, worker: _Worker, request: tuple[Any, ...], deadline: float) -> Any:
        loop = asyncio.get_running_loop()
        readable: asyncio.Future[None] = loop.create_future()

        def ready() -> None:
            if not readable.done():
                readable.set_result(None)

        fd = worker.conn.fileno()
        # The connection is read and written whole, blocking: an event loop built on libuv (uvloop) leaves a
        # watched descriptor non-blocking, and a large message would then fail half-sent or half-read.
        os.set_blocking(fd, True)
        # Sending is quick (the idle worker is blocked reading); large prompts go in 64 KB pipe chunks.
        worker.conn.send(request)
        loop.add_reader(fd, ready)
        try:
            async with asyncio.timeout(deadline):
                await readable
        finally:
            loop.remove_reader(fd)
            # uvloop (which uvicorn picks when it is installed) leaves a watched descriptor non-blocking: a
            # reply larger than the socket buffer would then fail half read, and the next large request
            # half written. The pipe is ours alone: blocking again, as Connection expects.
            os.set_blocking(fd, True)
        return worker.conn.recv()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.kill()


_POOL: _Pool | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> _Pool | None:
    global _POOL
    size = _pool_size()
    if size == 0:
        return None
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = _Pool(size)
        return _POOL


def shutdown() -> None:
    """Stops the idle workers (busy ones stop when their pipe closes, or with the process)."""
    global _POOL
    with _POOL_LOCK:
        pool, _POOL = _POOL, None
    if pool is not None:
        pool.close()


atexit.register(shutdown)


# ---------------------------------------------------------------------------------------------------
# Results of successful compiles

#: Bytes of pickled results the parent keeps; a result larger than ``_RESULT_MAX_ENTRY_BYTES`` is not kept.
RESULT_CACHE_BYTES = 8_000_000
_RESULT_MAX_ENTRY_BYTES = 256_000
#: Bytes counted for an entry besides its pickled result and key (the dictionary slot, the objects).
_RESULT_ENTRY_OVERHEAD = 400

_CacheKey = tuple[str, bytes, tuple[tuple[str, Any], ...]]


class _ResultCache:
    """Pickled ``(manifest, block messages, warnings, resolved variables)`` of successful compiles by
    (content etag, pickled variables, compiler limits). A hit unpickles a fresh copy, so no caller can
    change what the next one gets. Pickles are exact about types (``1``, ``1.0`` and ``True``, ``{1: …}``
    and ``{"1": …}`` differ); the same variables in another key order are a miss, never a wrong hit."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[_CacheKey, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0  # for tests and diagnostics

    @staticmethod
    def key(content: PromptContent, variables: Any) -> _CacheKey | None:
        """The key of compiling ``content`` with ``variables``; None when they cannot be keyed (not
        picklable, too deep, too large)."""
        try:
            values = pickle.dumps(variables, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # objects pickle cannot take, or nesting past the recursion limit
            return None
        if len(values) > _RESULT_MAX_ENTRY_BYTES:
            return None
        return (content.etag, values, _limits())

    @staticmethod
    def _size(key: _CacheKey, value: bytes) -> int:
        return len(key[0]) + len(key[1]) + len(value) + _RESULT_ENTRY_OVERHEAD

    def get(self, key: _CacheKey) -> tuple[dict[str, Any], list[dict[str, Any]], list[str], dict[str, Any]] | None:
        with self._lock:
            value = self._entries.get(key)
            if value is None:
                return None
            self._entries.move_to_end(key)
            self.hits += 1
        result: tuple[dict[str, Any], list[dict[str, Any]], list[str], dict[str, Any]] = pickle.loads(value)
        return result

    def put(self, key: _CacheKey, result: CompileResult) -> None:
        kept = (result.manifest, result.messages[: result.block_messages], result.warnings, result.variables)
        try:
            value = pickle.dumps(kept, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # a compile result is plain JSON data; this is only a guard
            return
        size = self._size(key, value)
        if size > min(_RESULT_MAX_ENTRY_BYTES, self.max_bytes):
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= self._size(key, old)
            self._entries[key] = value
            self._bytes += size
            while self._bytes > self.max_bytes:
                old_key, old_value = self._entries.popitem(last=False)
                self._bytes -= self._size(old_key, old_value)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)


_RESULTS = _ResultCache(RESULT_CACHE_BYTES)


async def _off_loop(op: str, args: tuple[Any, ...]) -> Any:
    """Runs ``op`` in a worker (callers check the sizes first: cheap, and oversize templates are refused
    before they are shipped anywhere)."""
    pool = _pool()
    if pool is None:
        return await asyncio.to_thread(_run, op, args)
    return await pool.call(op, (_flatten(args[0]), *args[1:]), compiler.TIME_LIMIT + HARD_SLACK)


async def compile_prompt_async(
    content: PromptContent,
    variables: dict[str, Any] | None = None,
    input_messages: list[dict[str, Any]] | None = None,
) -> CompileResult:
    """:func:`agnt_traces.compiler.compile_prompt` in a worker process, for code on the event loop.

    Raises:
        InvalidArgument: as ``compile_prompt``.
        CompileError: as ``compile_prompt``, and when the worker had to be stopped at the deadline.
    """
    compiler.check_sizes(content)  # also on a kept result: the limits may have changed since
    key = _ResultCache.key(content, variables)
    kept = _RESULTS.get(key) if key is not None else None
    if kept is not None:
        # What compile_prompt does with input messages, after the checks the kept compile passed.
        extra_messages = check_input_messages(input_messages)
        manifest, messages, warnings, resolved = kept
        block_messages = len(messages)
        messages.extend(extra_messages)
        return CompileResult(
            manifest=manifest, messages=messages, warnings=warnings, variables=resolved, block_messages=block_messages
        )
    started = time.perf_counter()
    manifest, messages, warnings, resolved, block_messages = await _off_loop(
        "compile", (content, variables, input_messages)
    )
    log.debug("compiled off the loop in %.2f ms", (time.perf_counter() - started) * 1000)
    result = CompileResult(
        manifest=manifest, messages=messages, warnings=warnings, variables=resolved, block_messages=block_messages
    )
    if key is not None:
        _RESULTS.put(key, result)
    return result


async def check_content_async(content: PromptContent) -> list[str]:
    """:func:`agnt_traces.compiler.check_content` (it parses every template) in a worker process.

    Raises:
        CompileError: as ``check_content``, and when the worker had to be stopped at the deadline.
    """
    compiler.check_sizes(content)
    warnings: list[str] = await _off_loop("check", (content,))
    return warnings

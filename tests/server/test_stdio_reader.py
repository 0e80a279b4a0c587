"""The stdio server's stdin, whatever it is (a file, a pipe, a socket, the same socket as stdout): every
request read is answered, also when stdin ends right behind it; a call still running at the end of stdin
holds the exit for the grace only, and a request the client cancelled or the SDK drops not at all; a line
that is not UTF-8 JSON is answered with a parse error, a leading byte order mark is ignored; and the
descriptor is left as it was found (blocking), for the processes that share it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from agnt_traces.server import stdio
from modelserver import ModelServer

INIT = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGNT_TRACES_") or k.endswith("MODEL_ENDPOINTS")}
    return {**env, **extra}


def _spawn(
    db: Path, stdin: Any = subprocess.PIPE, stdout: Any = subprocess.PIPE, stderr: Any = subprocess.DEVNULL
) -> subprocess.Popen[bytes]:
    """``agnt-traces serve`` (on pipes, unless told otherwise)."""
    return subprocess.Popen(
        [sys.executable, "-m", "agnt_traces", "serve", "--db", str(db)],
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        env=_env(),
    )


def _rpc(msg_id: Any, method: str, params: Any = None) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if msg_id is not None:
        message["id"] = msg_id
    if params is not None:
        message["params"] = params
    return json.dumps(message).encode() + b"\n"


def _serve_with_stdin(stdin: Any, db: Path) -> list[bytes]:
    proc = subprocess.run(
        [sys.executable, "-m", "agnt_traces", "serve", "--db", str(db)],
        stdin=stdin,
        capture_output=True,
        env=_env(AGNT_TRACES_STDIO_MAX_LINE_BYTES="2000"),
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


def _fed(data: bytes, kind: str) -> Any:
    """The reading end of a pipe or socket that a thread fills with ``data`` in pieces, then closes."""
    if kind == "pipe":
        read_end, write_end = os.pipe()
        ours, theirs = os.fdopen(write_end, "wb"), os.fdopen(read_end, "rb")
    else:
        a, b = socket.socketpair()
        ours, theirs = a.makefile("wb"), b.makefile("rb")
        a.close()
        b.close()

    def feed() -> None:
        for i in range(0, len(data), 500):  # in pieces, as a client's writes arrive
            ours.write(data[i : i + 500])
            ours.flush()
        ours.close()

    threading.Thread(target=feed, daemon=True).start()
    return theirs


@pytest.mark.parametrize("kind", ["file", "pipe", "socket"])
def test_every_request_is_answered_from_a_file_a_pipe_or_a_socket_also_right_before_the_end(
    tmp_path: Path, kind: str
) -> None:
    if kind == "file":
        path = tmp_path / "requests.jsonl"
        path.write_bytes(REQUESTS)
        with path.open("rb") as f:
            out = _serve_with_stdin(f, tmp_path / "t.db")
    else:
        with _fed(REQUESTS, kind) as stdin:
            out = _serve_with_stdin(stdin, tmp_path / "t.db")
    answers = {m["id"]: m for m in map(json.loads, out)}
    assert answers[1]["result"]["serverInfo"]["name"] == "agnt-traces"
    assert answers[2]["error"]["code"] == -32600 and "2000 bytes" in answers[2]["error"]["message"]
    assert any(t["name"] == "ingest_trace" for t in answers[3]["result"]["tools"])  # stdin ended right behind it


def test_a_burst_of_calls_then_the_end_of_stdin_gets_every_answer_and_leaves_the_pipe_blocking(tmp_path: Path) -> None:
    calls = b"".join(
        _rpc(i, "tools/call", {"name": "ingest_trace", "arguments": {"trace": {"output": f"t{i}", "messages": []}}})
        for i in range(2, 602)
    )
    read_end, write_end = os.pipe()
    os.write(write_end, _rpc(1, "initialize", INIT) + _rpc(None, "notifications/initialized"))
    writer = threading.Thread(target=lambda: (os.write(write_end, calls), os.close(write_end)), daemon=True)
    writer.start()
    started = time.monotonic()
    out = _serve_with_stdin(read_end, tmp_path / "t.db")
    took = time.monotonic() - started
    assert os.get_blocking(read_end)  # a descriptor shared with other processes is left as it was
    os.close(read_end)
    answered = {m["id"] for m in map(json.loads, out) if "result" in m and not m["result"].get("isError")}
    assert answered == set(range(1, 602))
    assert took < stdio.EOF_GRACE + 20


def test_one_socket_for_stdin_and_stdout_as_inetd_and_socat_give_it(tmp_path: Path) -> None:
    ours, theirs = socket.socketpair()
    proc = _spawn(tmp_path / "t.db", stdin=theirs, stdout=theirs)
    theirs.close()
    try:
        ours.sendall(_rpc(1, "initialize", INIT) + _rpc(None, "notifications/initialized"))
        ours.sendall(b"".join(_rpc(i, "tools/list") for i in range(2, 202)))
        time.sleep(1)  # the client does not read for a while: the server's writes fill the socket and wait
        got = b""
        ours.settimeout(30)
        while got.count(b"\n") < 201:
            chunk = ours.recv(1 << 20)
            assert chunk, "the server closed the socket"
            got += chunk
        ours.sendall(_rpc(999, "ping"))
        while b'"id":999' not in got:
            got += ours.recv(1 << 16)
        ours.shutdown(socket.SHUT_WR)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.wait()
        ours.close()


def test_pipes_the_client_made_non_blocking_are_waited_on_not_taken_for_the_end(tmp_path: Path) -> None:
    """The blocking mode belongs to the pipe, shared by both processes; a client (an event loop) may hand over
    non-blocking ones: the server waits for requests that come later and for room to write its answers."""
    in_read, in_write = os.pipe()
    out_read, out_write = os.pipe()
    os.set_blocking(in_read, False)
    os.set_blocking(out_write, False)
    proc = _spawn(tmp_path / "t.db", stdin=in_read, stdout=out_write)
    os.close(in_read)
    os.close(out_write)
    try:
        time.sleep(1)  # nothing to read for a while
        os.write(in_write, _rpc(1, "initialize", INIT))
        time.sleep(0.3)
        os.write(in_write, _rpc(None, "notifications/initialized"))
        os.write(in_write, b"".join(_rpc(i, "tools/list") for i in range(2, 12)))  # answers fill the pipe
        time.sleep(1)  # the client does not read yet
        got = bytearray()
        reader = threading.Thread(target=lambda: [got.extend(c) for c in iter(lambda: os.read(out_read, 1 << 16), b"")])
        reader.start()
        time.sleep(0.3)
        os.write(in_write, _rpc(99, "ping"))
        os.close(in_write)
        assert proc.wait(timeout=30) == 0
        reader.join(10)
    finally:
        proc.kill()
        proc.wait()
        os.close(out_read)
    ids = [json.loads(line)["id"] for line in got.splitlines()]
    assert ids == [1, *range(2, 12), 99]


def test_a_line_that_is_not_utf8_json_is_answered_and_a_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    lines = (
        _rpc(1, "initialize", INIT)
        + _rpc(None, "notifications/initialized")
        + b"\xef\xbb\xbf"
        + _rpc(2, "ping")  # as PowerShell writes it
        + '{"jsonrpc": "2.0", "id": 3, "method": "ping"}\n'.encode("utf-16-be")
        + b'{"jsonrpc": "2.0", "id": 4, "method": "ping", "params": {"x": "\xed\xa0\x80"}}\n'
        + _rpc(5, "ping")
    )
    with _fed(lines, "pipe") as stdin:
        out = _serve_with_stdin(stdin, tmp_path / "t.db")
    answers = [json.loads(m) for m in out]
    by_id = {a.get("id"): a for a in answers}
    assert by_id[2]["result"] == {}
    assert by_id[4]["error"]["code"] == -32700  # not UTF-8
    assert by_id[5]["result"] == {}
    parse_errors = [a for a in answers if a.get("error", {}).get("code") == -32700]
    assert len(parse_errors) == 2  # the UTF-16 line too (its id cannot be read: null)


def _serve_slowly(
    tmp_path: Path, model_server: ModelServer, delays: list[float] | None = None
) -> subprocess.Popen[bytes]:
    """A server with a prompt whose model calls take a minute (or ``delays``, one per call); initialized and
    ready for calls."""
    model_server.script([f"slow:{d}" for d in delays] if delays else ["slow:60"] * 10)
    content = {
        "blocks": [{"id": "s", "role": "system", "content": "Be brief."}],
        "model": {"provider": "openai", "name": "gpt-4o-mini", "params": {"api_base": model_server.openai_base}},
    }
    with (tmp_path / "stderr.txt").open("wb") as stderr:
        proc = _spawn(tmp_path / "t.db", stderr=stderr)
    assert proc.stdin is not None and proc.stdout is not None
    upsert = {"name": "upsert_prompt", "arguments": {"name": "slow", "content": content}}
    proc.stdin.write(
        _rpc(1, "initialize", INIT) + _rpc(None, "notifications/initialized") + _rpc(2, "tools/call", upsert)
    )
    proc.stdin.flush()
    answers = [json.loads(proc.stdout.readline()), json.loads(proc.stdout.readline())]
    assert [a["id"] for a in answers] == [1, 2] and not answers[1]["result"].get("isError")
    return proc


def _start_slow_calls(proc: subprocess.Popen[bytes], model_server: ModelServer, ids: list[int]) -> None:
    assert proc.stdin is not None
    run = {"name": "run_prompt", "arguments": {"name": "slow", "label": "draft"}}
    for msg_id in ids:
        proc.stdin.write(_rpc(msg_id, "tools/call", run))
    proc.stdin.flush()
    deadline = time.monotonic() + 30
    while len(model_server.requests) < len(ids) and time.monotonic() < deadline:  # the calls are under way
        time.sleep(0.05)
    assert len(model_server.requests) == len(ids)


def _seconds_to_exit_after_eof(proc: subprocess.Popen[bytes], status: int = 0) -> float:
    assert proc.stdin is not None and proc.stdout is not None
    try:
        closed = time.monotonic()
        proc.stdin.close()
        assert proc.wait(timeout=30) == status
        return time.monotonic() - closed
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def test_a_long_call_in_flight_at_the_end_of_stdin_holds_the_exit_for_the_grace_only(
    tmp_path: Path, model_server: ModelServer
) -> None:
    proc = _serve_slowly(tmp_path, model_server)
    _start_slow_calls(proc, model_server, [3])
    took = _seconds_to_exit_after_eof(proc, status=1)
    assert stdio.EOF_GRACE - 0.5 < took < stdio.EOF_GRACE + 6, took  # waited for the answer, then gave up
    said = (tmp_path / "stderr.txt").read_text()
    assert "1 request(s) left when stdin ended were cancelled" in said, said
    assert "Traceback" not in said


def test_calls_still_being_answered_after_the_end_of_stdin_are_all_waited_for(
    tmp_path: Path, model_server: ModelServer
) -> None:
    """One answer every 2.5 s: each extends the grace, so the last one, 7.5 s after the end, still comes."""
    proc = _serve_slowly(tmp_path, model_server, [2.5, 5, 7.5])
    assert proc.stdout is not None
    _start_slow_calls(proc, model_server, [3, 4, 5])
    assert proc.stdin is not None
    proc.stdin.close()
    with proc.stdout:
        answers = [json.loads(line) for line in proc.stdout]
    assert proc.wait(timeout=30) == 0
    assert sorted(a["id"] for a in answers) == [3, 4, 5]
    assert all(not a["result"]["isError"] for a in answers), answers


def test_a_file_of_thousands_of_requests_is_answered_whole(tmp_path: Path) -> None:
    """Read as they are answered (at most MAX_IN_FLIGHT run at once), not all at once: at the end of the file
    only a few are still running, and every one is answered, however long the whole takes."""
    n = 8000
    calls = b"".join(
        _rpc(i, "tools/call", {"name": "list_traces", "arguments": {"query": "refund", "limit": 3}})
        for i in range(10, 10 + n)
    )
    requests = tmp_path / "requests.jsonl"
    requests.write_bytes(_rpc(1, "initialize", INIT) + _rpc(None, "notifications/initialized") + calls)
    with requests.open("rb") as stdin:
        proc = subprocess.run(
            [sys.executable, "-m", "agnt_traces", "serve", "--db", str(tmp_path / "t.db")],
            stdin=stdin,
            capture_output=True,
            env=_env(),
            timeout=300,
        )
    answers = [json.loads(line) for line in proc.stdout.splitlines()]
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert sorted(a["id"] for a in answers) == [1, *range(10, 10 + n)]
    assert all("result" in a and not a["result"].get("isError") for a in answers[1:])


def test_calls_the_client_cancelled_or_the_sdk_drops_do_not_hold_the_exit(
    tmp_path: Path, model_server: ModelServer
) -> None:
    proc = _serve_slowly(tmp_path, model_server)
    _start_slow_calls(proc, model_server, [3, 4])
    assert proc.stdin is not None
    for msg_id in (3, 4):
        proc.stdin.write(_rpc(None, "notifications/cancelled", {"requestId": msg_id, "reason": "enough"}))
    for odd_id in (1.5, True, [1]):  # ids the SDK would drop without an answer (answered at the screen)
        proc.stdin.write(_rpc(odd_id, "ping"))
    proc.stdin.write(_rpc(7, "ping", [1, 2]))  # params must be an object
    proc.stdin.flush()
    took = _seconds_to_exit_after_eof(proc)
    assert took < stdio.EOF_GRACE - 1, took


def test_messages_the_sdk_would_drop_without_an_answer_are_answered(tmp_path: Path) -> None:
    odd = [
        b'{"jsonrpc": "2.0", "id": 1.5, "method": "ping"}',
        b'{"jsonrpc": "2.0", "id": true, "method": "ping"}',
        b'{"id": 2, "method": "ping"}',
        b'{"jsonrpc": "1.0", "id": 3, "method": "tools/call", "params": {"name": "list_traces", "arguments": {}}}',
        b'{"jsonrpc": "2.0", "id": 4, "method": 5}',
        b'{"jsonrpc": "2.0", "id": 5, "method": "tools/list", "params": [1]}',
        b'[{"jsonrpc": "2.0", "id": 6, "method": "ping"}]',
        b'{"method": "notifications/initialized"}',  # a notification: no answer, whatever is wrong with it
    ]
    lines = _rpc(1, "initialize", INIT) + _rpc(None, "notifications/initialized") + b"\n".join(odd) + b"\n"
    with _fed(lines + _rpc(7, "ping"), "pipe") as stdin:
        started = time.monotonic()
        out = _serve_with_stdin(stdin, tmp_path / "t.db")
    assert time.monotonic() - started < stdio.EOF_GRACE + 10
    answers = [json.loads(m) for m in out]
    errors = [
        (a["id"], a["error"]["code"], a["error"]["data"]["error"]["details"].get("field"))
        for a in answers
        if "error" in a
    ]
    assert sorted(errors, key=repr) == sorted(
        [
            (None, -32600, "id"),
            (None, -32600, "id"),
            (2, -32600, "jsonrpc"),
            (3, -32600, "jsonrpc"),  # a JSON-RPC error, not a tool result: the envelope is wrong
            (4, -32600, "method"),
            (5, -32602, "params"),
            (None, -32600, None),  # the batch
        ],
        key=repr,
    )
    assert {a["id"] for a in answers if "result" in a} == {1, 7}


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _drain(fd: int, into: bytearray) -> threading.Thread:
    thread = threading.Thread(target=lambda: [into.extend(c) for c in iter(lambda: os.read(fd, 1 << 16), b"")])
    thread.start()
    return thread


def test_answers_reach_a_client_that_reads_them_long_after_its_requests_ended(tmp_path: Path) -> None:
    requests = tmp_path / "requests.jsonl"  # `serve < requests.jsonl | a consumer that starts late`
    requests.write_bytes(
        _rpc(1, "initialize", INIT)
        + _rpc(None, "notifications/initialized")
        + b"".join(_rpc(i, "tools/list") for i in range(2, 12))  # ~1 MB of answers: more than the pipe holds
    )
    with requests.open("rb") as stdin:
        proc = _spawn(tmp_path / "t.db", stdin=stdin, stderr=subprocess.PIPE)
    time.sleep(stdio.EOF_GRACE + 3)  # longer than any grace: the answers wait as long as the client lives
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert [json.loads(line)["id"] for line in out.splitlines()] == list(range(1, 12))


def test_a_client_that_does_not_read_its_answers_is_not_read_either(tmp_path: Path) -> None:
    """Memory stays bounded by the answers' backlog (each unread answer used to hold a task and its answer:
    600 answers of ~100 KB took the server past 400 MB); once the client reads, every answer arrives."""
    proc = _spawn(tmp_path / "t.db")
    assert proc.stdin is not None and proc.stdout is not None
    requests = (
        _rpc(1, "initialize", INIT)
        + _rpc(None, "notifications/initialized")
        + b"".join(_rpc(i, "tools/list") for i in range(2, 602))
    )
    sender = threading.Thread(target=lambda: (proc.stdin.write(requests), proc.stdin.flush()), daemon=True)  # type: ignore[union-attr]
    sender.start()
    try:
        peak = 0.0
        for _ in range(30):  # 6 s without reading a byte
            time.sleep(0.2)
            peak = max(peak, _rss_mb(proc.pid))
        got = bytearray()
        reader = _drain(proc.stdout.fileno(), got)
        sender.join(30)
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0
        reader.join(10)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    assert peak < 200, f"the server held {peak:.0f} MB for a client that read nothing"
    assert sorted(json.loads(line)["id"] for line in got.splitlines()) == list(range(1, 602))


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_while_answers_wait_for_the_client_exits_with_its_status(
    tmp_path: Path, signum: int, status: int
) -> None:
    proc = _spawn(tmp_path / "t.db", stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stderr is not None
    proc.stdin.write(_rpc(1, "initialize", INIT) + _rpc(None, "notifications/initialized"))
    proc.stdin.write(b"".join(_rpc(i, "tools/list") for i in range(2, 22)))  # ~2 MB, never read
    proc.stdin.flush()
    time.sleep(3)
    started = time.monotonic()
    proc.send_signal(signum)
    try:
        assert proc.wait(timeout=10) == status
        took = time.monotonic() - started
        assert b"took too long" not in proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            pipe.close()  # type: ignore[union-attr]
    assert took < stdio.SHUTDOWN_GRACE  # the store was closed: not the watchdog's exit


@pytest.mark.parametrize("closed", ["stdin", "stdout"])
def test_started_with_stdin_or_stdout_closed_it_says_so(tmp_path: Path, closed: str) -> None:
    fd = 0 if closed == "stdin" else 1
    proc = subprocess.run(
        [sys.executable, "-m", "agnt_traces", "serve", "--db", str(tmp_path / "t.db")],
        preexec_fn=lambda: os.close(fd),
        capture_output=closed == "stdin",
        stderr=subprocess.PIPE if closed == "stdout" else None,
        env=_env(),
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.decode().startswith(f"error: {closed} is closed: `agnt-traces serve` speaks MCP over stdin")
    assert b"Traceback" not in proc.stderr


def test_a_stdout_that_fails_gives_one_line_and_status_1(tmp_path: Path) -> None:
    with open("/dev/full", "wb") as full:
        proc = subprocess.run(
            [sys.executable, "-m", "agnt_traces", "serve", "--db", str(tmp_path / "t.db")],
            input=_rpc(1, "initialize", INIT) + _rpc(None, "notifications/initialized") + _rpc(2, "tools/list"),
            stdout=full,
            stderr=subprocess.PIPE,
            env=_env(),
            timeout=60,
        )
    assert proc.returncode == 1
    last = proc.stderr.decode().strip().splitlines()[-1]
    assert last.startswith("agnt-traces: cannot write answers to stdout (No space left on device); ")
    assert last.endswith("bytes of answers were not written")
    assert b"Traceback" not in proc.stderr

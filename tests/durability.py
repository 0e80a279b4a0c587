"""Kill a server with SIGKILL at random moments during ingest; check what it acknowledged is stored.

Used by tests/store/test_durability.py: over stdio (MCP ``ingest_trace``) and over HTTP (REST ingest, and the
playground loop); a few rounds in the default suite, many more with ``-m slow``.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from factories import trace_payload

AGNT = str(Path(sys.executable).parent / "agnt-traces")


def stdio_round(db: str, round_no: int, rng: random.Random, window: int = 16) -> tuple[set[str], int]:
    """Ingest over stdio until a random SIGKILL. Returns (acknowledged ids, ids sent)."""
    proc = subprocess.Popen(
        [AGNT, "serve", "--db", db], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert proc.stdin is not None and proc.stdout is not None
    acked: set[str] = set()
    pending: dict[int, str] = {}
    lock = threading.Lock()
    slots = threading.Semaphore(window)
    ready = threading.Event()

    def send(msg: dict[str, Any]) -> None:
        proc.stdin.write((json.dumps(msg) + "\n").encode())  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]

    def reader() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            msg = json.loads(line)
            if msg.get("id") == 0:
                ready.set()
                continue
            with lock:
                trace_id = pending.pop(msg.get("id"), None)
            if trace_id and "result" in msg and not msg["result"].get("isError"):
                acked.add(trace_id)
            slots.release()

    reading = threading.Thread(target=reader, daemon=True)
    reading.start()
    send(
        {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "0"},
            },
        }
    )
    assert ready.wait(30), "server did not answer initialize"
    send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    deadline = time.monotonic() + rng.uniform(0.05, 0.8)
    sent = 0
    try:
        while time.monotonic() < deadline:
            if not slots.acquire(timeout=0.05):
                continue
            sent += 1
            trace_id = f"r{round_no}-{sent}"
            with lock:
                pending[sent] = trace_id
            send(
                {
                    "jsonrpc": "2.0",
                    "id": sent,
                    "method": "tools/call",
                    "params": {
                        "name": "ingest_trace",
                        "arguments": {"trace": trace_payload(id=trace_id, output=f"answer {trace_id}")},
                    },
                }
            )
    except BrokenPipeError:
        pass
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    reading.join(10)
    for pipe in (proc.stdin, proc.stdout):
        with contextlib.suppress(BrokenPipeError):
            pipe.close()
    with lock:
        return set(acked), sent


def check_database(db: str) -> dict[str, int]:
    """Integrity and nothing half-written. Returns counts."""
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        orphans = con.execute(
            "SELECT count(*) FROM traces t LEFT JOIN manifests m ON m.id = t.manifest_id WHERE m.id IS NULL"
        ).fetchone()[0]
        assert orphans == 0, f"{orphans} traces without their manifest"
        tags = con.execute(
            "SELECT count(*) FROM trace_tags g LEFT JOIN traces t ON t.seq = g.seq WHERE t.seq IS NULL"
        ).fetchone()[0]
        assert tags == 0, f"{tags} tag rows without their trace"
        count = con.execute("SELECT count(*) FROM traces").fetchone()[0]
        return {"traces": count}
    finally:
        con.close()


def stored_ids(db: str) -> set[str]:
    con = sqlite3.connect(db)
    try:
        return {r[0] for r in con.execute("SELECT id FROM traces")}
    finally:
        con.close()


# -- HTTP ---------------------------------------------------------------------------------------------------

TENANT = "T"
_TOKENS: dict[str, str] = {}  # db path → a token for TENANT (tokens survive restarts: they are in the db)


def http_token(db: str) -> str:
    """A bearer token for ``TENANT``, made once per database with ``agnt-traces token create``."""
    if db not in _TOKENS:
        out = subprocess.run(
            [AGNT, "token", "create", "--tenant", TENANT, "--db", db], capture_output=True, text=True, check=True
        )
        _TOKENS[db] = out.stdout.strip()
    return _TOKENS[db]


class HttpServer:
    """``agnt-traces serve --http --port 0 --db DB`` in a subprocess; the bound port is read from its startup
    line. Its stderr is drained in a thread (the last lines are kept for failure messages)."""

    def __init__(self, db: str) -> None:
        env = {**os.environ, "AGNT_TRACES_LOG_LEVEL": "warning"}
        self.proc = subprocess.Popen(
            [AGNT, "serve", "--http", "--host", "127.0.0.1", "--port", "0", "--db", db],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        self.log: deque[str] = deque(maxlen=50)
        assert self.proc.stderr is not None
        deadline = time.monotonic() + 60
        port = None
        while port is None and time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                raise AssertionError(f"server exited early (code {self.proc.wait(10)}): {''.join(self.log)}")
            self.log.append(line)
            match = re.search(r"serving on http://127\.0\.0\.1:(\d+) ", line)
            if match:
                port = int(match.group(1))
        assert port is not None, "server did not print its URL in 60 s"
        self.port = port
        self._drain = threading.Thread(target=self.log.extend, args=(self.proc.stderr,), daemon=True)
        self._drain.start()

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._drain.join(10)
        assert self.proc.stderr is not None
        self.proc.stderr.close()

    def stop(self) -> None:
        """A clean shutdown (SIGTERM), as an operator would do it."""
        self.proc.terminate()
        try:
            code = self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("server did not stop within 20 s of SIGTERM") from None
        self._drain.join(10)
        assert self.proc.stderr is not None
        self.proc.stderr.close()
        # uvicorn shuts down gracefully, then re-raises the signal: -SIGTERM is its clean exit.
        assert code in (0, -signal.SIGTERM), f"server exited with {code} on SIGTERM: {''.join(self.log)}"

    def errors_logged(self) -> list[str]:
        return [line for line in self.log if "Traceback" in line or " ERROR " in line or " CRITICAL " in line]


class Rest:
    """A keep-alive HTTP/1.1 client (``http.client``) for one thread, authorised for ``TENANT``."""

    GONE = (OSError, http.client.HTTPException)  # what a killed server looks like to a client

    def __init__(self, port: int, token: str, timeout: float = 60) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One request under ``/api/v1/tenants/T``; raises one of ``GONE`` when the server is not there."""
        data = None if body is None else json.dumps(body)
        self.conn.request(method, f"/api/v1/tenants/{TENANT}{path}", body=data, headers=self.headers)
        response = self.conn.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw else None

    def close(self) -> None:
        self.conn.close()


def http_round(
    db: str, round_no: int, rng: random.Random, clients: int = 4
) -> tuple[set[str], list[list[str]], list[str]]:
    """Ingest over HTTP with ``clients`` concurrent keep-alive clients (single traces and small batches,
    client-supplied ids) until a random SIGKILL of the server.

    Returns (ids whose 200/201 answer was received, every batch sent as its list of ids, unexpected answers).
    """
    token = http_token(db)
    server = HttpServer(db)
    acked: set[str] = set()
    batches: list[list[str]] = []
    problems: list[str] = []
    lock = threading.Lock()
    killed = threading.Event()

    def client(c: int) -> None:
        rest = Rest(server.port, token, timeout=30)
        crng = random.Random(rng.random())
        n = 0
        try:
            while not killed.is_set():
                size = 1 if crng.random() < 0.6 else crng.randint(2, 6)
                ids = [f"h{round_no}-c{c}-{n + k}" for k in range(size)]
                n += size
                traces = [trace_payload(id=i, output=f"answer {i}", tags=["prod", f"c{c}"]) for i in ids]
                body: Any = traces[0] if size == 1 else {"traces": traces}
                with lock:
                    batches.append(ids)
                try:
                    status, answer = rest.call("POST", "/traces", body)
                except Rest.GONE:
                    return
                if status not in (200, 201):
                    with lock:
                        problems.append(f"{status} {answer}")
                    continue
                got = [answer["id"]] if size == 1 else [t["id"] for t in answer["traces"]]
                if got != ids:
                    with lock:
                        problems.append(f"answer names {got}, sent {ids}")
                with lock:
                    acked.update(ids)
        finally:
            rest.close()

    threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in range(clients)]
    for t in threads:
        t.start()
    time.sleep(rng.uniform(0.05, 1.0))
    server.kill()
    killed.set()
    for t in threads:
        t.join(30)
        assert not t.is_alive(), "an ingest client hung after the kill"
    if server.errors_logged():
        problems.append("server logged errors: " + "".join(server.errors_logged()))
    with lock:
        return set(acked), list(batches), list(problems)


def check_batches(db: str, batches: list[list[str]]) -> None:
    """A batch is one transaction: after a crash either all of its traces are stored or none."""
    stored = stored_ids(db)
    for ids in batches:
        present = [i for i in ids if i in stored]
        assert not present or len(present) == len(ids), f"batch half stored: {present} of {ids}"


INTRO = "You help {{ company }} customers."
PLAYGROUND_PROMPT: dict[str, Any] = {
    "content": {
        "blocks": [
            {"id": "intro", "role": "system", "content": INTRO},
            {"id": "ask", "role": "user", "content": "Question: {{ question }}"},
        ],
        "variables": [
            {"name": "company", "type": "string", "required": True},
            {"name": "question", "type": "string", "required": True},
        ],
        "model": {"provider": "agnt-local", "name": "echo"},
    }
}


@dataclass
class PlaygroundLog:
    """What the server acknowledged during a playground round, per session."""

    sessions: set[str] = field(default_factory=set)  # sessions whose open got its 201
    runs: dict[str, set[str]] = field(default_factory=dict)  # session → trace ids of acknowledged runs
    edits: dict[str, list[str]] = field(default_factory=dict)  # session → intro contents sent, in order
    last_acked_edit: dict[str, int] = field(default_factory=dict)  # session → index into edits
    problems: list[str] = field(default_factory=list)


def http_playground_round(db: str, round_no: int, rng: random.Random, workers: int = 2) -> PlaygroundLog:
    """Open sessions from a trace, edit, run on ``agnt-local/echo`` and sometimes save, over REST from
    ``workers`` threads, until a random SIGKILL (after at least one run was acknowledged)."""
    token = http_token(db)
    server = HttpServer(db)
    log = PlaygroundLog()
    lock = threading.Lock()
    killed = threading.Event()
    first_run = threading.Event()
    rest = Rest(server.port, token)
    try:
        status, _ = rest.call("GET", "/prompts/pg")
        if status == 404:
            assert rest.call("PUT", "/prompts/pg", PLAYGROUND_PROMPT)[0] == 200
            assert rest.call("POST", "/prompts/pg/publish", {})[0] == 200
        variables = {"company": "Acme", "question": f"round {round_no}?"}
        status, ran = rest.call("POST", "/prompts/pg/run", {"variables": variables})  # the first loads LiteLLM
        assert status == 200, ran
        base_trace = ran["trace"]["id"]
    except BaseException:
        server.kill()
        raise
    finally:
        rest.close()

    def fail(msg: str) -> None:
        with lock:
            log.problems.append(msg)

    def worker(w: int) -> None:
        rest = Rest(server.port, token)
        wrng = random.Random(rng.random())
        n = 0
        try:
            while not killed.is_set():
                status, session = rest.call("POST", f"/traces/{base_trace}/playground/sessions")
                if status != 201:
                    return fail(f"open: {status} {session}")
                sid = session["id"]
                with lock:
                    log.sessions.add(sid)
                    log.runs[sid] = set()
                    log.edits[sid] = []
                for _ in range(wrng.randint(1, 4)):
                    n += 1
                    text = f"You help {{{{ company }}}} customers. (r{round_no} w{w} edit {n})"
                    with lock:
                        log.edits[sid].append(text)
                        index = len(log.edits[sid]) - 1
                    status, answer = rest.call("PATCH", f"/playground/sessions/{sid}/blocks/intro", {"content": text})
                    if status != 200:
                        return fail(f"edit: {status} {answer}")
                    with lock:
                        log.last_acked_edit[sid] = index
                    status, answer = rest.call("POST", f"/playground/sessions/{sid}/run")
                    if status != 200 or any(r["status"] != "success" or not r["traceId"] for r in answer["runs"]):
                        return fail(f"run: {status} {answer}")
                    with lock:
                        log.runs[sid].update(r["traceId"] for r in answer["runs"])
                    first_run.set()
                    if wrng.random() < 0.3:
                        status, answer = rest.call("POST", f"/playground/sessions/{sid}/save", {"force": True})
                        if status != 200:
                            return fail(f"save: {status} {answer}")
        except Rest.GONE:
            return
        finally:
            rest.close()

    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(workers)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while not first_run.wait(0.1) and any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        pass
    if not first_run.is_set():
        log.problems.append("no run_session was answered")
    time.sleep(rng.uniform(0.0, 1.5))
    server.kill()
    killed.set()
    for t in threads:
        t.join(30)
        assert not t.is_alive(), "a playground worker hung after the kill"
    if server.errors_logged():
        log.problems.append("server logged errors: " + "".join(server.errors_logged()))
    return log


def check_playground_after_restart(db: str, log: PlaygroundLog) -> int:
    """Restart the server on the killed database and check every acknowledged session over REST: it loads,
    every run it lists has its trace, every acknowledged run is listed, and its block holds the last
    acknowledged edit (or a later one that was sent). Returns the number of runs checked."""
    server = HttpServer(db)
    rest = Rest(server.port, http_token(db))
    checked = 0
    try:
        for sid in sorted(log.sessions):
            status, session = rest.call("GET", f"/playground/sessions/{sid}")
            assert status == 200, f"session {sid} does not load after the kill: {status} {session}"
            listed = set()
            for run in session["runs"]:
                assert run["traceId"], f"session {sid} lists a run without a trace: {run}"
                status, trace = rest.call("GET", f"/traces/{run['traceId']}")
                assert status == 200, f"session {sid}: run {run['traceId']} has no trace: {status} {trace}"
                assert trace["sessionId"] == sid and trace["source"] == "playground", trace
                listed.add(run["traceId"])
                checked += 1
            missing = log.runs[sid] - listed
            assert not missing, f"session {sid}: acknowledged runs missing after the kill: {sorted(missing)}"
            intro = next(b["content"] for b in session["blocks"] if b["id"] == "intro")
            sent = log.edits[sid]
            last = log.last_acked_edit.get(sid)
            allowed = sent[last:] if last is not None else [INTRO, *sent]
            assert intro in allowed, f"session {sid}: block holds {intro!r}, expected one of {allowed}"
        status, listing = rest.call("GET", "/playground/sessions?limit=200")
        assert status == 200, listing
        status, prompt = rest.call("GET", "/prompts/pg")
        assert status == 200, prompt
    finally:
        rest.close()
        server.stop()
    return checked

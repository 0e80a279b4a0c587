"""Kill a server with SIGKILL at random moments during ingest; check what it acknowledged is stored.

Used by tests/test_durability.py (a few rounds in the default suite, 25 with ``-m slow``).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
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

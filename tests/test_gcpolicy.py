"""Server processes tune the cycle collector (gcpolicy): start-up's objects frozen, young collections rarer.
Library processes and in-process use keep the interpreter's defaults."""

from __future__ import annotations

import gc
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from agnt_traces import gcpolicy
from mcp_helpers import call, server_params

# Imported first by the server process (PYTHONPATH): writes the collector's state to a file, twice a second.
PROBE = """
import gc, json, os, sys, threading, time
def report():
    while True:
        state = {"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count(), "litellm": "litellm" in sys.modules}
        with open(os.environ["GC_PROBE_OUT"] + ".tmp", "w") as f:
            json.dump(state, f)
        os.replace(os.environ["GC_PROBE_OUT"] + ".tmp", os.environ["GC_PROBE_OUT"])
        time.sleep(0.2)
threading.Thread(target=report, daemon=True).start()
"""


@pytest.fixture
def gc_state() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gcpolicy._serving = False
    gc.set_threshold(*threshold)
    gc.unfreeze()


def test_only_a_server_process_freezes_and_collects_young_objects_less_often(gc_state: None) -> None:
    _, older, oldest = gc.get_threshold()
    frozen = gc.get_freeze_count()
    gcpolicy.settle()
    assert gc.get_freeze_count() == frozen  # not a server: nothing changes
    gcpolicy.serving()
    assert gc.get_threshold() == (gcpolicy.YOUNG_THRESHOLD, older, oldest)
    kept = [object() for _ in range(10)] + [[i] for i in range(1000)]
    gcpolicy.settle()
    assert gc.get_freeze_count() >= frozen + len(kept) - 10  # the lists are tracked, and now frozen


def _probe_env(tmp_path: Path) -> tuple[dict[str, str], Path]:
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "sitecustomize.py").write_text(PROBE)
    out = tmp_path / "gc.json"
    path = os.pathsep.join(p for p in (str(probe), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "GC_PROBE_OUT": str(out)}, out


def _state(out: Path, until: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        if out.exists():
            state = json.loads(out.read_text())
            if until(state):
                return state
        time.sleep(0.1)
    raise AssertionError(f"the process never reached the expected state: {state}")


def _tuned(state: dict[str, Any]) -> bool:
    return state["threshold"][0] == gcpolicy.YOUNG_THRESHOLD and state["frozen"] > 10_000


@pytest.mark.anyio
async def test_the_stdio_server_runs_tuned_once_it_serves(tmp_path: Path) -> None:
    env, out = _probe_env(tmp_path)
    async with Client(server_params(str(tmp_path / "t.db"), **env), mode="legacy") as client:
        await call(client, "list_traces")
        state = await anyio.to_thread.run_sync(_state, out, _tuned)
    assert state["frozen"] > 10_000  # the imports' objects, at least


def test_the_http_server_runs_tuned_once_it_is_ready(tmp_path: Path) -> None:
    env, out = _probe_env(tmp_path)
    cmd = [sys.executable, "-m", "agnt_traces", "serve", "--http", "--port", "0", "--db", str(tmp_path / "t.db")]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, **env}, text=True
    )
    try:
        assert proc.stderr is not None
        url = re.search(r"serving on (http://\S+?) ", proc.stderr.readline())
        assert url, "no ready line"
        with urllib.request.urlopen(url.group(1) + "/healthz", timeout=10) as answer:
            assert answer.status == 200
        _state(out, _tuned)
    finally:
        proc.terminate()
        proc.wait(15)
        if proc.stderr is not None:
            proc.stderr.close()


def test_a_library_process_keeps_the_defaults_even_after_loading_litellm(tmp_path: Path) -> None:
    code = (
        "import gc; from agnt_traces.llm import load_litellm; before = gc.get_threshold(); load_litellm(); "
        "print(before == gc.get_threshold(), gc.get_freeze_count())"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.split() == ["True", "0"]


def test_a_freeze_keeps_no_young_cyclic_garbage(gc_state: None) -> None:
    import weakref

    class Node:
        pass

    gcpolicy.serving()
    gc.collect()
    node = Node()
    node.self = node  # type: ignore[attr-defined]  # cyclic: only the collector can free it
    gone = weakref.ref(node)
    del node
    gcpolicy.settle()
    assert gone() is None, "cyclic garbage pending at the freeze was frozen for good"

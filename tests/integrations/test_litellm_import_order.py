"""Importing the callback never sends LiteLLM to the network for its price map, whichever module the app
imports first; when the app imported litellm first (so LiteLLM's own import went online before any code
of ours ran), the callback says so once and how to avoid it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

pytestmark = pytest.mark.anyio

TESTS = str(Path(__file__).resolve().parents[1])
SRC = str(Path(__file__).resolve().parents[2] / "src")

# A network that refuses every name lookup and connection beyond loopback (as a machine without DNS
# does), recording each attempt with the phase of the script and the thread that made it.
SCRIPT = """
import json, socket, sys, threading, time
sys.path.insert(0, {tests!r})
from netguard import is_allowed_host

attempts, phase = [], ["start"]
real_getaddrinfo, real_create_connection = socket.getaddrinfo, socket.create_connection

def record(host):
    attempts.append({{"phase": phase[0], "thread": threading.current_thread().name, "host": str(host)}})
    return socket.gaierror(socket.EAI_NONAME, "blocked by the test")

def getaddrinfo(host, *args, **kwargs):
    if not is_allowed_host(host):
        raise record(host)
    return real_getaddrinfo(host, *args, **kwargs)

def create_connection(address, *args, **kwargs):
    if not is_allowed_host(address[0]):
        raise record(address[0])
    return real_create_connection(address, *args, **kwargs)

socket.getaddrinfo, socket.create_connection = getaddrinfo, create_connection

times = {{}}
for module in {order!r}:
    phase[0] = module
    started = time.perf_counter()
    if module == "litellm":
        import litellm
    else:
        from agnt_traces.integrations.litellm import AgntTracesCallback
    times[module] = time.perf_counter() - started

phase[0] = "after"
from litellm.litellm_core_utils.get_model_cost_map import get_model_cost_map_source_info
print(json.dumps({{"attempts": attempts, "times": times, "map": get_model_cost_map_source_info()["source"]}}))
"""

OURS = "agnt_traces.integrations.litellm"


def run(tmp_path: Path, order: tuple[str, ...]) -> dict[str, Any]:
    script = tmp_path / "import_order.py"
    script.write_text(SCRIPT.format(tests=TESTS, order=order))
    env = {k: v for k, v in os.environ.items() if k not in ("LITELLM_LOCAL_MODEL_COST_MAP", "LITELLM_OFFLINE_MODE")}
    env["PYTHONPATH"] = SRC
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["stderr"] = out.stderr
    return result


async def test_callback_first_keeps_litellm_offline(tmp_path: Path) -> None:
    result = await anyio.to_thread.run_sync(run, tmp_path, (OURS, "litellm"))
    assert result["attempts"] == []  # no thread ever tried the network
    assert result["map"] == "local"
    assert "imported before" not in result["stderr"]


async def test_litellm_first_costs_its_own_fetch_only_and_is_explained(tmp_path: Path) -> None:
    result = await anyio.to_thread.run_sync(run, tmp_path, ("litellm", OURS))
    main_thread = [a for a in result["attempts"] if a["thread"] == "MainThread"]
    # LiteLLM's import went for the price map before our module existed: that is LiteLLM's doing...
    assert main_thread and all(a["phase"] == "litellm" for a in main_thread), result["attempts"]
    # ...and importing the callback afterwards never adds a fetch of its own.
    assert not [a for a in main_thread if a["phase"] == OURS]
    assert result["map"] == "local"  # the fetch failed: LiteLLM uses its bundled map, as in the other order
    # The app is told once why its import was slow and how to avoid it.
    assert result["stderr"].count("imported before agnt_traces.integrations.litellm") == 1
    assert "LITELLM_LOCAL_MODEL_COST_MAP=True" in result["stderr"]
    # Importing the callback after litellm costs only its own set-up, not a second LiteLLM import.
    assert result["times"][OURS] < max(3.0, result["times"]["litellm"])

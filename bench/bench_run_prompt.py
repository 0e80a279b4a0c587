"""What ``run_prompt`` over MCP adds beyond a bare MCP round trip and a bare ``litellm.acompletion``.

    .venv/bin/python bench/bench_run_prompt.py [--calls 300] [--mode legacy|auto] [--before SRC]

One local model server (tests/modelserver.py: OpenAI wire format on 127.0.0.1) in a process of its own
(in this process its thread would compete with the bare call for the GIL); two stdio servers spawned
the way an MCP client spawns them, each driven by the SDK's ``Client``:

* ``agnt-traces serve`` on a fresh SQLite file holding one published prompt (a 600-character system
  prompt with two variables, a condition block), called with ``run_prompt`` and a 100-character question;
* a bare ``MCPServer`` with two tools: ``ping`` (returns a short string: the bare MCP round trip) and
  ``complete`` (one ``litellm.acompletion`` of the same messages to the same server, returns the text:
  the bare round trip plus a bare call, in a server process).

Then, interleaved call by call (so drift and other load hit every path alike), after a warm-up:

* bare acompletion           ``litellm.acompletion`` from this process, the same rendered messages;
* bare MCP round trip        ``ping`` on the bare server;
* bare MCP + acompletion     ``complete`` on the bare server;
* run_prompt over MCP        ``run_prompt`` on ``agnt-traces serve`` (compile, call, record, answer).

``--before SRC`` adds a second ``agnt-traces serve`` running the package found in SRC (e.g. an export of
an older commit's ``src``) on a copy of the database, interleaved with the others: before and after
measured in the same run, under the same load.

Prints the median of each and what is ours: run_prompt − bare acompletion − bare MCP round trip (the
issue's measure), and run_prompt − (bare MCP + acompletion) (the same, measured in one server call).

Then the server processes' own CPU per call (``/proc``: user + system time of the server and of its
compile workers, over ``--calls`` calls of one tool at a time): less sensitive than wall time to other
work on the machine. Ours in CPU = run_prompt − (bare MCP + acompletion).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))

from mcp import Client, StdioServerParameters  # noqa: E402

from agnt_traces.app import open_app  # noqa: E402
from agnt_traces.config import Settings  # noqa: E402
from agnt_traces.llm import load_litellm  # noqa: E402
from agnt_traces.llm.policy import ModelPolicy  # noqa: E402

AGNT = str(Path(sys.executable).parent / "agnt-traces")

BARE = """
import sys
from mcp.server.mcpserver import MCPServer
from agnt_traces.llm import load_litellm

API_BASE = sys.argv[1]
mcp = MCPServer("bare")


@mcp.tool()
async def ping() -> str:
    return "pong"


@mcp.tool()
async def complete(system: str, question: str) -> str:
    response = await load_litellm().acompletion(
        model="openai/gpt-4o-mini",
        api_base=API_BASE,
        api_key="sk-local",
        messages=[{"role": "system", "content": system}, {"role": "user", "content": question}],
        num_retries=0,
        max_retries=0,
    )
    return response.choices[0].message.content


load_litellm()
mcp.run("stdio")
"""

# A realistic prompt: ~600 characters of system prompt, two variables, a condition block.
PERSONA = (
    "You are the customer support assistant of {{ company }}, an online shop that sells outdoor "
    "equipment: tents, sleeping bags, stoves, clothing and climbing gear. Answer in the customer's "
    "language, in at most four short sentences, politely and precisely. When the customer asks about "
    "an order, ask for the order number if it is missing and never invent tracking details. When the "
    "customer asks about returns, explain the 30-day return policy and the free return label. Never "
    "promise refunds, discounts or delivery dates; offer to hand over to a human colleague instead. "
)
PREMIUM = "This customer has a premium membership: offer the express line."
QUESTION = "Hello, my parcel with the new two-person tent has not arrived yet although it was due on Monday?"


def prompt_content(openai_base: str) -> dict[str, Any]:
    return {
        "blocks": [
            {"id": "persona", "role": "system", "content": PERSONA},
            {"id": "tier", "role": "system", "content": PREMIUM, "condition": "tier == 'premium'"},
        ],
        "variables": [
            {"name": "company", "type": "string", "required": True},
            {"name": "tier", "type": "string", "default": "standard"},
        ],
        "model": {"provider": "openai", "name": "gpt-4o-mini", "params": {"api_base": openai_base}},
    }


async def prepare_db(db_path: str, policy: ModelPolicy, openai_base: str) -> str:
    """Stores and publishes the prompt; returns the system prompt it renders to."""
    async with open_app(Settings(db_path=db_path, model_policy=policy)) as app:
        await app.prompts.upsert("default", "support", prompt_content(openai_base))
        await app.prompts.publish("default", "support")
    return PERSONA.replace("{{ company }}", "Acme").rstrip() + "\n\n" + PREMIUM


MODEL_SERVER = (
    "import sys; sys.path.insert(0, {tests!r}); from modelserver import ModelServer; "
    "server = ModelServer().start(); print(server.port, flush=True); sys.stdin.read(); server.stop()"
)


@contextlib.contextmanager
def model_server_process() -> Iterator[str]:
    """Starts tests/modelserver.py in a process of its own; yields its base URL; stops it."""
    code = MODEL_SERVER.format(tests=str(ROOT / "tests"))
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield f"http://127.0.0.1:{int(proc.stdout.readline())}"
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(10)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return found


def tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and its live children (the compile workers)."""
    return _cpu_seconds(pid) + sum(_cpu_seconds(child) for child in _children(pid))


def server_pid(command_part: str) -> int:
    """The pid of this process's child whose command line contains ``command_part``."""
    for child in _children(os.getpid()):
        with open(f"/proc/{child}/cmdline", "rb") as cmdline:
            if command_part.encode() in cmdline.read():
                return child
    raise LookupError(command_part)


def stdio_params(args: list[str], env: dict[str, str]) -> StdioServerParameters:
    passed = {k: os.environ[k] for k in ("PATH", "PYTHONPATH") if k in os.environ}
    return StdioServerParameters(
        command=args[0], args=args[1:], env={"AGNT_TRACES_LOG_LEVEL": "WARNING", **passed, **env}
    )


async def main(calls: int, mode: str, before_src: str | None) -> None:
    litellm = load_litellm()
    with model_server_process() as base_url, tempfile.TemporaryDirectory() as tmp:
        openai_base = f"{base_url}/v1"
        policy = ModelPolicy.build([base_url])
        db_path = str(Path(tmp) / "bench.db")
        system = await prepare_db(db_path, policy, openai_base)
        bare_script = Path(tmp) / "bare.py"
        bare_script.write_text(BARE)
        env = {"PYTHONPATH": str(ROOT / "src"), "AGNT_TRACES_MODEL_ENDPOINTS": base_url}
        ours_params = stdio_params([AGNT, "serve", "--db", db_path], env)
        bare_params = stdio_params([sys.executable, str(bare_script), openai_base], env)
        messages = [{"role": "system", "content": system}, {"role": "user", "content": QUESTION}]
        before_db = str(Path(tmp) / "before.db")
        if before_src is not None:
            await prepare_db(before_db, policy, openai_base)
        before_params = stdio_params([AGNT, "serve", "--db", before_db], {**env, "PYTHONPATH": before_src or ""})

        async with contextlib.AsyncExitStack() as stack:
            ours = await stack.enter_async_context(Client(ours_params, mode=mode))  # type: ignore[arg-type]
            bare = await stack.enter_async_context(Client(bare_params, mode=mode))  # type: ignore[arg-type]
            before = (
                await stack.enter_async_context(Client(before_params, mode=mode))  # type: ignore[arg-type]
                if before_src is not None
                else None
            )

            async def acompletion() -> None:
                await litellm.acompletion(
                    model="openai/gpt-4o-mini",
                    api_base=openai_base,
                    api_key="sk-local",
                    messages=messages,
                    num_retries=0,
                    max_retries=0,
                )

            async def ping() -> None:
                result = await bare.call_tool("ping", {})
                assert not result.is_error

            async def complete() -> None:
                result = await bare.call_tool("complete", {"system": system, "question": QUESTION})
                assert not result.is_error

            def run_prompt_on(client: Client) -> Callable[[], Awaitable[None]]:
                async def run_prompt() -> None:
                    result = await client.call_tool(
                        "run_prompt",
                        {
                            "name": "support",
                            "variables": {"company": "Acme", "tier": "premium"},
                            "messages": [{"role": "user", "content": QUESTION}],
                        },
                    )
                    assert not result.is_error, result.content

                return run_prompt

            paths: dict[str, Callable[[], Awaitable[None]]] = {
                "bare acompletion": acompletion,
                "bare MCP round trip": ping,
                "bare MCP + acompletion": complete,
                "run_prompt over MCP": run_prompt_on(ours),
            }
            if before is not None:
                paths["run_prompt, before"] = run_prompt_on(before)
            timings: dict[str, list[float]] = {name: [] for name in paths}
            for _ in range(30):  # warm-up: connections, pools, lazy imports, caches
                for fn in paths.values():
                    await fn()
            order = random.Random(0)
            last = None
            for _ in range(calls):
                # A fresh order each round, and never the same path twice in a row (a process called right
                # after itself is warmer: reversing every other round gave the first and last paths that edge).
                names = list(paths)
                order.shuffle(names)
                if names[0] == last:
                    names.append(names.pop(0))
                last = names[-1]
                for name in names:
                    t0 = time.perf_counter()
                    await paths[name]()
                    timings[name].append((time.perf_counter() - t0) * 1000)

            pids = {
                "bare MCP round trip": server_pid(str(bare_script)),
                "bare MCP + acompletion": server_pid(str(bare_script)),
                "run_prompt over MCP": server_pid(db_path),
            }
            if before is not None:
                pids["run_prompt, before"] = server_pid(before_db)
            cpu: dict[str, list[float]] = {name: [] for name in pids}
            for _ in range(5):  # rounds, alternating paths, so load changes hit all alike
                for name, pid in pids.items():
                    used = tree_cpu(pid)
                    for _ in range(calls // 5):
                        await paths[name]()
                    cpu[name].append((tree_cpu(pid) - used) / (calls // 5) * 1000)

    med = {name: statistics.median(values) for name, values in timings.items()}
    print(f"warm calls, median of {calls} each, interleaved (MCP over stdio, {mode} mode):")
    for name, value in med.items():
        print(f"  {name:<24} {value:7.2f} ms")
    runs = [name for name in med if name.startswith("run_prompt")]
    for name in runs:
        ours_ms = med[name] - med["bare acompletion"] - med["bare MCP round trip"]
        ours_one_call = med[name] - med["bare MCP + acompletion"]
        print(f"  {name}: ours = run_prompt - acompletion - MCP round trip = {ours_ms:+.2f} ms  (target ≤ 2 ms)")
        print(f"  {name}: ours = run_prompt - (bare MCP + acompletion)     = {ours_one_call:+.2f} ms")
    cpu_med = {name: statistics.median(values) for name, values in cpu.items()}
    print(f"server CPU per call, median of 5 rounds of {calls // 5} (server process + its compile workers):")
    for name, value in cpu_med.items():
        print(f"  {name:<24} {value:7.2f} ms")
    for name in runs:
        ours_cpu = cpu_med[name] - cpu_med["bare MCP + acompletion"]
        print(f"  {name}: ours = run_prompt - (bare MCP + acompletion) = {ours_cpu:+.2f} ms of CPU")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--mode", choices=("legacy", "auto"), default="legacy")
    parser.add_argument("--before", metavar="SRC", help="also run agnt-traces serve from this src directory")
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.mode, args.before))

"""Every ```python and ```sh block in README.md runs as printed, in README order, in a fresh folder.

A block opts out with an HTML comment on the line right before it: ``<!-- not-run: the reason -->``.
Everything else runs: python blocks as scripts; sh blocks command by command, where ``agnt-traces
serve`` starts in the background (the later blocks talk to it), the token that ``token create`` prints
replaces the ``agt_...`` placeholder, and every ``curl`` must get a 2xx answer. The only other change is
the port: README's 8787 becomes a free one, so that a server already running there does not interfere.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mcp_helpers import call

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BIN = Path(sys.executable).parent
FENCE = re.compile(r"^```(\w*)\s*$")
NOT_RUN = re.compile(r"^<!--\s*not-run:\s*(\S.*?)\s*-->$")
README_PORT = "8787"
TOKEN_PLACEHOLDER = "agt_..."


@dataclass
class Block:
    lang: str
    line: int
    code: str
    not_run: str | None  # the reason, when the block opts out


def readme_blocks(text: str) -> list[Block]:
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opened = FENCE.match(lines[i])
        if not opened:
            i += 1
            continue
        start = i
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            i += 1
        before = lines[start - 1].strip() if start else ""
        reason = NOT_RUN.match(before)
        blocks.append(Block(opened.group(1), start + 1, "\n".join(lines[start + 1 : i]) + "\n", reason and reason[1]))
        i += 1
    return blocks


def shell_commands(code: str) -> list[str]:
    """One entry per command: lines joined across backslash continuations and open quotes."""
    commands: list[str] = []
    pending = ""
    for line in code.splitlines():
        pending = f"{pending}\n{line}" if pending else line
        if pending.rstrip().endswith("\\"):
            continue
        try:
            shlex.split(pending, comments=True)
        except ValueError:  # an open quote: the command goes on
            continue
        if pending.strip():
            commands.append(pending)
        pending = ""
    assert not pending, f"unterminated command: {pending!r}"
    return commands


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Session:
    """What README's blocks share as a reader would: a folder, an environment, variables, a server."""

    cwd: Path
    port: int
    env: dict[str, str]
    assignments: list[str] = field(default_factory=list)
    token: str | None = None
    servers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def local(self, code: str) -> str:
        return code.replace(f":{README_PORT}", f":{self.port}").replace(f"--port {README_PORT}", f"--port {self.port}")

    def run_python(self, block: Block) -> None:
        script = self.cwd / f"readme_line_{block.line}.py"
        script.write_text(self.local(block.code))
        done = subprocess.run(
            [sys.executable, str(script)], cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, f"README line {block.line}:\n{done.stderr}"

    def run_sh(self, block: Block) -> None:
        for command in shell_commands(self.local(block.code)):
            self.run_command(block, command)

    def run_command(self, block: Block, command: str) -> None:
        where = f"README line {block.line}: {command.splitlines()[0]}"
        words = shlex.split(command, comments=True)
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=\S*", words[0]) and len(words) == 1:
            if TOKEN_PLACEHOLDER in command:
                assert self.token, f"{where}: no token was created before"
                command = command.replace(TOKEN_PLACEHOLDER, self.token)
            self.assignments.append(command)
            return
        script = "\n".join([*self.assignments, command])
        if words[:2] == ["agnt-traces", "serve"]:
            self.start_server(where, "\n".join([*self.assignments, "exec " + command]))  # exec: terminate() stops it
            return
        if words[0] == "curl":
            script += " -o /dev/stderr -w '%{http_code}'"
        done = subprocess.run(["sh", "-c", script], cwd=self.cwd, env=self.env, capture_output=True, timeout=120)
        out, err = done.stdout.decode(), done.stderr.decode()
        assert done.returncode == 0, f"{where}: exit {done.returncode}\n{err}"
        if words[0] == "curl":
            assert out.startswith("2"), f"{where}: HTTP {out}\n{err}"
        if words[:3] == ["agnt-traces", "token", "create"]:
            self.token = out.strip()
            self.env["AGNT_TRACES_TOKEN"] = self.token

    def start_server(self, where: str, script: str) -> None:
        server = subprocess.Popen(
            ["sh", "-c", script],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.servers.append(server)
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, f"{where}: the server exited with {server.returncode}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=5) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            assert time.monotonic() < deadline, f"{where}: no answer on /healthz within 60 s"
            time.sleep(0.1)  # polling a port that is not yet open: there is no event to wait on

    def get(self, path: str) -> dict[str, object]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", headers={"Authorization": f"Bearer {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            data: dict[str, object] = json.loads(answer.read())
            return data


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGNT_TRACES_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # as after `source .venv/bin/activate`
    env["XDG_DATA_HOME"] = str(tmp_path / "data")  # the default database stays in this test's folder
    if env.get("PYTHONPATH"):  # run this checkout's code from the fresh folder too
        env["PYTHONPATH"] = os.pathsep.join(str((ROOT / p).resolve()) for p in env["PYTHONPATH"].split(os.pathsep))
    work = tmp_path / "work"
    work.mkdir()
    s = Session(cwd=work, port=free_port(), env=env)
    try:
        yield s
    finally:
        for server in s.servers:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=15)


def test_the_block_parser_sees_opt_outs_and_multi_line_commands() -> None:
    text = (
        "intro\n<!-- not-run: needs a GPU -->\n```sh\nmake gpu\n```\n\n"
        "```sh\ncurl -d '{\n  \"a\": 1}' \\\n  x\necho hi\n```\n"
    )
    first, second = readme_blocks(text)
    assert first.not_run == "needs a GPU" and second.not_run is None
    assert shell_commands(second.code) == ["curl -d '{\n  \"a\": 1}' \\\n  x", "echo hi"]


def test_every_opt_out_says_why() -> None:
    text = README.read_text()
    comments = [line for line in text.splitlines() if line.strip().startswith("<!-- not-run")]
    assert all(NOT_RUN.match(line.strip()) for line in comments), comments
    runnable = [b for b in readme_blocks(text) if b.lang in ("python", "sh") and b.not_run is None]
    assert any(b.lang == "python" for b in runnable) and any(b.lang == "sh" for b in runnable)


def test_readme_blocks_run_as_printed(session: Session) -> None:
    blocks = [b for b in readme_blocks(README.read_text()) if b.lang in ("python", "sh") and b.not_run is None]
    for block in blocks:
        if block.lang == "python":
            session.run_python(block)
        else:
            session.run_sh(block)
    if session.servers and "AgntTracesCallback(url=" in README.read_text():
        page = session.get("/api/v1/tenants/acme/traces?source=litellm")
        assert page["traces"], "the LiteLLM callback example recorded no trace on the README's server"


# -- mcp.json.example ---------------------------------------------------------------------------------------

PLACEHOLDER = "/ABSOLUTE/PATH/TO/agnt-traces"


def test_mcp_json_example_is_the_readme_entry_with_one_path_to_edit() -> None:
    text = (ROOT / "mcp.json.example").read_text()
    entry = json.loads(text)["mcpServers"]["agnt-traces"]
    assert "${" not in text, "clients that do not expand variables would send the placeholder itself"
    assert text.count(PLACEHOLDER) == 1 and entry["command"] == f"{PLACEHOLDER}/.venv/bin/agnt-traces"
    assert PLACEHOLDER in README.read_text()
    readme_json = [json.loads(b.code) for b in readme_blocks(README.read_text()) if b.lang == "json"]
    assert json.loads(text) in readme_json, "README's entry and mcp.json.example differ"


@pytest.mark.anyio
async def test_mcp_json_example_launches_the_server(tmp_path: Path) -> None:
    import anyio
    from mcp import Client, StdioServerParameters

    entry = json.loads((ROOT / "mcp.json.example").read_text())["mcpServers"]["agnt-traces"]
    clone = BIN.parent.parent  # the folder holding .venv: the path a reader writes in
    command = entry["command"].replace(PLACEHOLDER, str(clone))
    env = {"XDG_DATA_HOME": str(tmp_path), "PATH": "/usr/bin:/bin", **entry.get("env", {})}
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.pathsep.join(str((ROOT / p).resolve()) for p in os.environ["PYTHONPATH"].split(":"))
    params = StdioServerParameters(command=command, args=entry["args"], env=env, cwd=str(tmp_path))
    with anyio.fail_after(60):
        async with Client(params) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert {"list_traces", "open_playground", "trace_stats"} <= names
            assert (await call(client, "list_traces"))["traces"] == []
    assert (tmp_path / "agnt-traces" / "traces.db").exists()  # the default database, in the user data folder

"""The fix loop driven by the official MCP inspector's CLI (a real, non-Python MCP client).

The inspector is an npm package; `.ci/run` installs it and sets AGNT_TRACES_INSPECTOR to its
`mcp-inspector` binary. Without it (no Node.js here), the test is skipped and says so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

INSPECTOR = os.environ.get("AGNT_TRACES_INSPECTOR", "")
AGNT = str(Path(sys.executable).parent / "agnt-traces")

pytestmark = pytest.mark.skipif(
    not (INSPECTOR and Path(INSPECTOR).exists()),
    reason="set AGNT_TRACES_INSPECTOR to the mcp-inspector binary (npm @modelcontextprotocol/inspector)",
)


def inspector(db: str, tool: str, **args: Any) -> dict[str, Any]:
    cmd = [INSPECTOR, "--cli", AGNT, "serve", "--db", db, "--method", "tools/call", "--tool-name", tool]
    for key, value in args.items():
        cmd += ["--tool-arg", f"{key}={value if isinstance(value, str) else json.dumps(value)}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert not result.get("isError"), result
    return result["structuredContent"]  # type: ignore[no-any-return]


def test_the_loop_through_the_mcp_inspector_cli(tmp_path: Path) -> None:
    db = str(tmp_path / "inspector.db")
    listed = subprocess.run(
        [INSPECTOR, "--cli", AGNT, "serve", "--db", db, "--method", "tools/list"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    names = {t["name"] for t in json.loads(listed.stdout)["tools"]}
    assert {"list_traces", "open_playground", "edit_block", "run_session", "save_session"} <= names
    content = {
        "blocks": [{"id": "greet", "role": "system", "content": "Greet {{ who }}."}],
        "variables": [{"name": "who", "type": "string", "required": True}],
        "model": {"provider": "agnt-local", "name": "echo"},
    }
    inspector(db, "upsert_prompt", name="greeter", content=content)
    assert inspector(db, "publish_prompt", name="greeter")["version"] == 1
    trace = inspector(
        db, "run_prompt", name="greeter", variables={"who": "Ada"}, messages=[{"role": "user", "content": "hello"}]
    )["trace"]
    found = inspector(db, "list_traces", prompt_name="greeter")
    assert [r["id"] for r in found["traces"]] == [trace["id"]]
    session = inspector(db, "open_playground", trace_id=trace["id"])
    sid = session["id"]
    inspector(db, "edit_block", session_id=sid, block_id="greet", content="Greet {{ who }} warmly.")
    run = inspector(db, "run_session", session_id=sid)["runs"][0]
    assert run["status"] == "success"
    diff = inspector(db, "diff_session", session_id=sid)
    assert diff["changed"] and "+++ b/blocks/greet" in diff["unified"]
    assert inspector(db, "save_session", session_id=sid)["draftRevision"] == 2
    assert inspector(db, "publish_prompt", name="greeter")["version"] == 2
    again = inspector(db, "run_prompt", name="greeter", variables={"who": "Ada"})["trace"]
    assert again["promptVersion"] == 2 and "warmly" in again["manifest"]["system"]

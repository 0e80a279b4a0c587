"""``agnt-traces replay PROMPT`` for CI: the report on stdout, exit 0 when the gate passes, 1 when it fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from agnt_traces.app import open_app
from agnt_traces.config import Settings
from golden_helpers import PHRASE, content_of, variables
from modelserver import ModelServer

pytestmark = pytest.mark.anyio

AGNT = str(Path(sys.executable).parent / "agnt-traces")


async def _replay_cli(db_path: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AGNT_TRACES_LOG_LEVEL": "WARNING"}
    return await anyio.to_thread.run_sync(
        lambda: subprocess.run(
            [AGNT, "replay", "support", "--db", db_path, *args], capture_output=True, text=True, env=env, timeout=90
        )
    )


async def test_replay_exit_status_is_the_gate(settings: Settings, model_server: ModelServer) -> None:
    async with open_app(settings) as app:
        await app.prompts.upsert("default", "support", content_of(model_server))
        await app.prompts.publish("default", "support")
        ids = [(await app.prompts.run("default", "support", variables=variables(i)))["trace"]["id"] for i in range(3)]
        await app.golden.pin(
            "default", "support", trace_ids=ids, required=True, checks=[{"type": "contains", "value": PHRASE}]
        )

    ok = await _replay_cli(settings.db_path, "--against", "draft")
    assert ok.returncode == 0, ok.stderr
    assert "passed" in ok.stdout.splitlines()[0] and "3 passed" in ok.stdout

    async with open_app(settings) as app:
        await app.prompts.upsert("default", "support", content_of(model_server, with_signoff=False))
    failed = await _replay_cli(settings.db_path, "--json")
    assert failed.returncode == 1
    report = json.loads(failed.stdout)
    assert report["status"] == "failed" and report["summary"]["regressions"] == 3
    assert report["gate"]["gated"] is False and report["gate"]["failures"]

    missing = await _replay_cli(settings.db_path.replace("traces.db", "other.db"))
    assert missing.returncode == 2 and "not found" in missing.stderr

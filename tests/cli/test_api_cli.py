"""The Python API for apps, and the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import agnt_traces
from agnt_traces import AgntTraces, CompileError
from modelserver import ModelServer

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]
AGNT = str(Path(sys.executable).parent / "agnt-traces")


def test_public_names() -> None:
    for name in agnt_traces.__all__:
        assert getattr(agnt_traces, name) is not None
    with pytest.raises(AttributeError):
        agnt_traces.nope  # noqa: B018


async def test_an_app_runs_a_prompt_and_gets_its_trace(db_path: str, model_server: ModelServer) -> None:
    async with AgntTraces.open(db=db_path, tenant="acme") as at:
        await at.upsert_prompt(
            "greet",
            {
                "blocks": [{"id": "sys", "role": "system", "content": "Greet {{ who }}."}],
                "variables": [{"name": "who", "type": "string", "required": True}],
                "model": {
                    "provider": "openai",
                    "name": "gpt-4o-mini",
                    "params": {"api_base": model_server.openai_base},
                },
            },
        )
        await at.publish_prompt("greet")
        result = await at.run_prompt("greet", variables={"who": "Ada"}, messages=[{"role": "user", "content": "hi"}])
        assert result.output == "echo: hi"
        assert result.trace["manifest"]["system"] == "Greet Ada." and result.trace["promptVersion"] == 1
        with pytest.raises(CompileError, match="who"):
            await at.run_prompt("greet")


def cli(*args: str, db: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AGNT, *args, "--db", db], capture_output=True, text=True, timeout=60)


def test_prompts_import_export_round_trip_exactly(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    out = cli("prompts", "import", str(ROOT / "prompts"), db=db)
    assert out.returncode == 0, out.stderr
    assert "support-reply: created" in out.stdout and "code-review: created" in out.stdout
    again = cli("prompts", "import", str(ROOT / "prompts"), db=db)
    assert "support-reply: unchanged" in again.stdout
    exported = tmp_path / "out"
    assert cli("prompts", "export", str(exported), db=db).returncode == 0
    for original in (ROOT / "prompts").glob("*.yaml"):
        assert (exported / original.name).read_text() == original.read_text(), original.name


def test_prompts_import_refuses_a_bad_folder_and_stores_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "good.yaml").write_text(
        (ROOT / "prompts" / "support-reply.yaml").read_text().replace("name: support-reply", "name: good")
    )
    (folder / "bad.yaml").write_text("name: bad\nblocks:\n- id: a\n  content: '{% if %}'\n")
    db = str(tmp_path / "t.db")
    out = cli("prompts", "import", str(folder), db=db)
    assert out.returncode == 2 and "a" in out.stderr
    listed = cli("prompts", "list", "--json", db=db)
    assert json.loads(listed.stdout) == {"prompts": []}


def test_traces_list_and_show(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    code = (
        "import asyncio, sys; sys.path.insert(0, 'tests'); from factories import trace_payload;"
        "from agnt_traces.app import open_app; from agnt_traces.config import Settings\n"
        "async def main():\n"
        f"    async with open_app(Settings(db_path={db!r})) as app:\n"
        "        for i in range(3): await app.traces.ingest('default', trace_payload(id=f't{i}', output=f'out {i}'))\n"
        "asyncio.run(main())"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    table = cli("traces", "list", "--limit", "2", db=db)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "CREATED", "PROMPT"] and "more: --cursor" in table.stdout
    as_json = json.loads(cli("traces", "list", "--json", "--query", "out", "--status", "success", db=db).stdout)
    assert len(as_json["traces"]) == 3
    shown = json.loads(cli("traces", "show", "t1", "--json", db=db).stdout)
    assert shown["output"] == "out 1"
    missing = cli("traces", "show", "nope", db=db)
    assert missing.returncode == 2 and "not found" in missing.stderr
    bad = cli("traces", "list", "--since", "yesterday", db=db)
    assert bad.returncode == 2 and "since" in bad.stderr


def test_token_create_prints_once_and_stores_a_hash(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    made = subprocess.run(
        [AGNT, "token", "create", "--tenant", "acme", "--name", "ci", "--db", db],
        capture_output=True,
        text=True,
        check=True,
    )
    token = made.stdout.strip()
    assert token.startswith("agt_") and len(token) > 30
    listed = subprocess.run([AGNT, "token", "list", "--db", db], capture_output=True, text=True, check=True)
    assert "tenant=acme" in listed.stdout and token not in listed.stdout
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("t.db*"))
    assert token.encode() not in stored


def test_a_traces_duration_excludes_loading_litellm(tmp_path: Path) -> None:
    """The first call of a process loads LiteLLM (seconds): that is not the model's latency."""
    code = (
        "import asyncio\nfrom agnt_traces import AgntTraces\n"
        "async def main():\n"
        f"    async with AgntTraces.open(db={str(tmp_path / 't.db')!r}) as at:\n"
        "        await at.upsert_prompt('p', {'blocks': [{'id': 'a', 'content': 'hi'}],"
        " 'model': {'provider': 'agnt-local', 'name': 'echo'}})\n"
        "        r = await at.run_prompt('p', label='draft')\n"
        "        print(r.trace['duration'])\n"
        "asyncio.run(main())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert float(out.stdout.strip()) < 0.5

"""The command line as a newcomer meets it: bad --db paths, --version, readable views, stats, pipes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

import agnt_traces
from agnt_traces import AgntTraces, InvalidArgument
from agnt_traces.app import open_app
from agnt_traces.cli import BROKEN_PIPE_EXIT, main
from agnt_traces.config import Settings
from agnt_traces.server.mcp import build_server
from factories import trace_payload
from mcp_helpers import call

ROOT = Path(__file__).resolve().parents[2]
AGNT = str(Path(sys.executable).parent / "agnt-traces")


def seed(db: str, traces: list[dict[str, Any]], tenant: str = "default") -> None:
    async def run() -> None:
        async with open_app(Settings(db_path=db, tenant=tenant)) as app:
            for t in traces:
                await app.traces.ingest(tenant, t)

    asyncio.run(run())


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- 1. a bad --db is one line, exit 2 --------------------------------------------------------------------


def bad_paths(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    not_sqlite = tmp_path / "notes.txt"
    not_sqlite.write_text("these are my notes, not a database\n" * 20)
    return {
        "directory": (folder, "is a directory"),
        "not sqlite": (not_sqlite, "is not a SQLite database"),
        "under a file": (not_sqlite / "traces.db", "is a file"),
    }


COMMANDS_OPENING_THE_DB = [
    ["traces", "list"],
    ["traces", "show", "t1"],
    ["stats"],
    ["prompts", "list"],
    ["prompts", "import", str(ROOT / "prompts")],
    ["prompts", "export", "OUT"],
    ["token", "create"],
    ["token", "list"],
    ["token", "revoke", "tok_1"],
    ["demo"],
]


@pytest.mark.parametrize("kind", ["directory", "not sqlite", "under a file"])
@pytest.mark.parametrize("command", COMMANDS_OPENING_THE_DB, ids=lambda c: " ".join(c[:2]))
def test_a_bad_db_path_is_one_line_naming_it_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, command: list[str]
) -> None:
    path, problem = bad_paths(tmp_path)[kind]
    argv = [str(tmp_path / "out") if a == "OUT" else a for a in command]
    code, out, err = run_cli(capsys, *argv, "--db", str(path))
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: database "), err
    assert str(path) in err and problem in err
    assert "Traceback" not in out + err
    assert not (tmp_path / "out").exists()  # export wrote nothing


def test_the_db_from_the_environment_is_checked_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGNT_TRACES_DB", str(tmp_path))
    code, _, err = run_cli(capsys, "traces", "list")
    assert code == 2 and f"database {tmp_path}: is a directory" in err and "AGNT_TRACES_DB" in err


@pytest.mark.parametrize("http", [False, True], ids=["stdio", "http"])
@pytest.mark.parametrize("kind", ["directory", "not sqlite"])
def test_serve_with_a_bad_db_exits_2_with_one_line(tmp_path: Path, kind: str, http: bool) -> None:
    path, problem = bad_paths(tmp_path)[kind]
    argv = [AGNT, "serve", "--db", str(path)] + (["--http", "--port", "0"] if http else [])
    done = subprocess.run(argv, stdin=subprocess.PIPE, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and str(path) in done.stderr and problem in done.stderr, done.stderr
    assert done.stdout == ""


@pytest.mark.anyio
async def test_the_python_api_says_what_is_wrong_with_the_db(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="is a directory"):
        async with AgntTraces.open(db=str(tmp_path)):
            pass


@pytest.mark.parametrize("kind", ["new", "empty", "existing"])
def test_good_db_paths_still_open(tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str) -> None:
    db = tmp_path / "deep" / "er" / "t.db"
    if kind != "new":
        db.parent.mkdir(parents=True)
        db.touch()
    if kind == "existing":
        seed(str(db), [trace_payload(id="t1")])
    code, out, err = run_cli(capsys, "traces", "list", "--json", "--db", str(db))
    assert code == 0, err
    assert len(json.loads(out)["traces"]) == (1 if kind == "existing" else 0)


# -- 5. --version, readable views, stats --------------------------------------------------------------------


def test_version_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"agnt-traces {agnt_traces.__version__}\n"


def test_version_as_installed() -> None:
    done = subprocess.run([AGNT, "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == f"agnt-traces {agnt_traces.__version__}", done.stderr
    assert done.stdout.strip().split()[1].count(".") == 2


def test_traces_list_still_filters_by_version(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "t.db")
    seed(db, [trace_payload(id="v1", promptVersion=1), trace_payload(id="v2", promptVersion=2)])
    code, out, _ = run_cli(capsys, "traces", "list", "--version", "2", "--json", "--db", db)
    assert code == 0 and [t["id"] for t in json.loads(out)["traces"]] == ["v2"]


def test_traces_show_is_readable_and_json_on_request(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "t.db")
    seed(db, [trace_payload(id="t1", output="Your refund left on Monday.\nIt takes 3 days.")])
    code, out, _ = run_cli(capsys, "traces", "show", "t1", "--db", db)
    assert code == 0
    assert not out.lstrip().startswith("{")
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["trace", "t1", "success"]
    assert "support@v1" in out and "openai/gpt-4o-mini" in out and "40 in + 9 out = 49" in out
    assert "Where is my refund?" in out and "  It takes 3 days." in out
    code, out, _ = run_cli(capsys, "traces", "show", "t1", "--json", "--db", db)
    assert code == 0 and json.loads(out)["output"].endswith("It takes 3 days.")


def test_prompts_list_is_a_table_and_json_on_request(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "t.db")
    code, out, _ = run_cli(capsys, "prompts", "list", "--db", db)
    assert code == 0 and "no prompts yet" in out
    assert run_cli(capsys, "prompts", "import", str(ROOT / "prompts"), "--db", db)[0] == 0
    code, out, _ = run_cli(capsys, "prompts", "list", "--db", db)
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["NAME", "LATEST", "LABELS"]
    assert sorted(line.split()[0] for line in lines[1:]) == ["code-review", "support-reply"]
    code, out, _ = run_cli(capsys, "prompts", "list", "--json", "--db", db)
    assert sorted(p["name"] for p in json.loads(out)["prompts"]) == ["code-review", "support-reply"]


def stats_traces() -> list[dict[str, Any]]:
    return [
        trace_payload(id="a1", promptName="support", duration=1.0, cost=0.5),
        trace_payload(id="a2", promptName="support", status="error", error={"type": "x", "message": "boom"}),
        trace_payload(id="b1", promptName="review", model={"provider": "anthropic", "name": "claude"}),
    ]


def test_stats_is_a_table_per_group(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "t.db")
    seed(db, stats_traces())
    code, out, err = run_cli(capsys, "stats", "--db", db)
    assert code == 0, err
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:]}
    assert out.splitlines()[1].split()[:3] == ["PROMPT", "COUNT", "ERRORS"]
    assert rows["support"][1:4] == ["2", "1", "50.0"] and rows["review"][1:3] == ["1", "0"]
    code, out, _ = run_cli(capsys, "stats", "--group-by", "model", "--db", db)
    assert "anthropic/claude" in out and "openai/gpt-4o-mini" in out
    code, out, _ = run_cli(capsys, "stats", "--since", "1h", "--group-by", "status", "--db", db)
    assert {line.split()[0] for line in out.splitlines()[2:]} == {"success", "error"}
    code, out, err = run_cli(capsys, "stats", "--since", "last tuesday", "--db", db)
    assert code == 2 and "since" in err


@pytest.mark.parametrize("group_by", ["prompt", "version", "model", "status"])
def test_stats_json_is_what_the_trace_stats_tool_answers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], group_by: str
) -> None:
    db = str(tmp_path / "t.db")
    seed(db, stats_traces())
    code, out, _ = run_cli(capsys, "stats", "--group-by", group_by, "--since", "24h", "--json", "--db", db)
    assert code == 0
    from_cli = json.loads(out)

    async def from_tool() -> dict[str, Any]:
        with anyio.fail_after(30):
            async with Client(build_server(Settings(db_path=db))) as client:
                return await call(client, "trace_stats", group_by=group_by, since="24h")

    from_mcp = asyncio.run(from_tool())
    assert from_cli["groups"] == from_mcp["groups"] and len(from_cli["groups"]) >= 2
    assert from_cli["groupBy"] == group_by


# -- 5. a closed pipe is not an error ---------------------------------------------------------------------


def test_json_into_head_ends_quietly(tmp_path: Path) -> None:
    """``agnt-traces traces list --json | head -1``: far more output than a pipe holds, reader gone."""
    db = str(tmp_path / "t.db")
    seed(db, [trace_payload(id=f"t{i:03}", output="x" * 400) for i in range(200)])
    with subprocess.Popen(
        [AGNT, "traces", "list", "--json", "--limit", "200", "--db", db],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline() == b"{\n"
        proc.stdout.close()
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == BROKEN_PIPE_EXIT
    assert err == ""


def test_a_broken_pipe_in_process_is_quiet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(tmp_path / "t.db")
    seed(db, [trace_payload(id="t1")])

    def closed(*_: Any, **__: Any) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    import agnt_traces.cli.traces as traces_cli

    monkeypatch.setattr(traces_cli, "print_json", closed)
    monkeypatch.setattr("agnt_traces.cli._stdout_to_devnull", lambda: None)
    assert main(["traces", "show", "t1", "--json", "--db", db]) == BROKEN_PIPE_EXIT
    assert capsys.readouterr().err == ""

"""``prompts import|export|list`` and ``token create|list|revoke``, run in-process through ``cli.main``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from agnt_traces.cli import main

ROOT = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_import_creates_then_is_unchanged_then_exports_byte_for_byte(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "t.db")
    code, out, err = run(capsys, "prompts", "import", str(ROOT / "prompts"), "--db", db)
    assert code == 0, err
    assert "support-reply: created (draft revision 1" in out and "code-review: created" in out
    code, out, _ = run(capsys, "prompts", "import", str(ROOT / "prompts"), "--db", db)
    assert code == 0 and "support-reply: unchanged" in out and "code-review: unchanged" in out

    code, out, err = run(capsys, "prompts", "export", str(tmp_path / "out"), "--db", db)
    assert code == 0, err
    for original in (ROOT / "prompts").glob("*.yaml"):
        assert (tmp_path / "out" / original.name).read_bytes() == original.read_bytes()

    code, out, _ = run(capsys, "prompts", "list", "--json", "--db", db)
    listed = json.loads(out)
    rows = listed["prompts"] if isinstance(listed, dict) else listed
    assert sorted(p["name"] for p in rows) == ["code-review", "support-reply"]


def test_an_edited_file_updates_its_draft_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "t.db")
    folder = tmp_path / "prompts"
    shutil.copytree(ROOT / "prompts", folder)
    assert run(capsys, "prompts", "import", str(folder), "--db", db)[0] == 0
    path = folder / "code-review.yaml"
    path.write_text(path.read_text().replace("description: ", "description: Edited. ", 1))
    code, out, _ = run(capsys, "prompts", "import", str(folder), "--db", db)
    assert code == 0
    assert "code-review: updated (draft revision 2" in out and "support-reply: unchanged" in out


def test_one_bad_file_imports_nothing_and_names_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "t.db")
    folder = tmp_path / "prompts"
    shutil.copytree(ROOT / "prompts", folder)
    (folder / "broken.yaml").write_text("name: broken\nblocks:\n- id: a\n  content: '{{ x '\n")
    code, out, err = run(capsys, "prompts", "import", str(folder), "--db", db)
    assert code == 2
    assert err.startswith("error: ") and "broken.yaml" in err and "nothing was imported" in err
    assert "Traceback" not in err and out == ""
    code, out, _ = run(capsys, "prompts", "list", "--json", "--db", db)
    listed = json.loads(out)
    assert (listed["prompts"] if isinstance(listed, dict) else listed) == []


def test_token_is_printed_once_listed_without_its_value_and_revoked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "t.db")
    code, out, err = run(capsys, "token", "create", "--name", "ci", "--tenant", "acme", "--db", db)
    assert code == 0, err
    token = out.strip()
    assert len(token) >= 32 and "\n" not in token
    code, out, _ = run(capsys, "token", "list", "--db", db)
    assert code == 0 and "name=ci" in out and "tenant=acme" in out and out.rstrip().endswith("active")
    assert token not in out  # the value is never shown again
    token_id = out.split()[0]
    code, out, err = run(capsys, "token", "revoke", token_id, "--db", db)
    assert code == 0, err
    code, out, _ = run(capsys, "token", "list", "--db", db)
    assert "active" not in out
    code, out, err = run(capsys, "token", "revoke", token_id, "--db", db)  # once is enough
    assert code == 2 and "no active token" in err and "token list shows the ids" in err
    code, out, err = run(capsys, "token", "revoke", "nope", "--db", db)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err

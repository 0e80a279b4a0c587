"""`python3 run.py test` installs the PostgreSQL server where it is missing, and says so on stderr."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from test_run_py import Project, write_script

pytestmark = pytest.mark.skipif(os.name == "nt" or os.geteuid() != 0, reason="apt-get runs as root on POSIX")

FAKE_APT = """#!/bin/sh
echo "apt-get $* frontend=$DEBIAN_FRONTEND" >> "{log}"
"""


def test_missing_server_is_installed_with_apt_get_before_the_tests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = Project(tmp_path, with_npm=True)
    write_script(project.path_dir / "apt-get", FAKE_APT.format(log=project.log))
    monkeypatch.setenv("AGNT_TRACES_PG_INITDB_GLOB", str(tmp_path / "nowhere" / "*" / "initdb"))
    monkeypatch.delenv("AGNT_TRACES_PG_BINDIR", raising=False)
    monkeypatch.delenv("AGNT_TRACES_SKIP_POSTGRES", raising=False)
    done = project.run("test")
    calls = project.calls()
    apt = [c for c in calls if c.startswith("apt-get")]
    assert apt == [
        "apt-get update frontend=noninteractive",
        "apt-get install -y --no-install-recommends postgresql frontend=noninteractive",
    ]
    assert calls.index(apt[-1]) < next(i for i, c in enumerate(calls) if c.startswith("pytest"))
    assert "apt-get install -y postgresql" in done.stderr


def test_an_installed_server_is_left_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = Project(tmp_path, with_npm=True)
    write_script(project.path_dir / "apt-get", FAKE_APT.format(log=project.log))
    initdb = tmp_path / "pg" / "15" / "bin" / "initdb"
    write_script(initdb, "#!/bin/sh\n")
    monkeypatch.setenv("AGNT_TRACES_PG_INITDB_GLOB", str(tmp_path / "pg" / "*" / "bin" / "initdb"))
    project.run("test")
    assert not [c for c in project.calls() if c.startswith("apt-get")]


def test_without_apt_the_tests_are_said_to_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = Project(tmp_path, with_npm=True)
    monkeypatch.setenv("AGNT_TRACES_PG_INITDB_GLOB", str(tmp_path / "nowhere" / "initdb"))
    monkeypatch.delenv("AGNT_TRACES_PG_BINDIR", raising=False)
    monkeypatch.delenv("AGNT_TRACES_SKIP_POSTGRES", raising=False)
    done = project.run("test")
    assert "PostgreSQL tests will fail" in done.stderr

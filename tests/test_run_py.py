"""`python3 run.py …` in a copy of the project whose .venv holds stand-ins for pip, the tools and npm.

The stand-ins log each call, so the tests see what set-up installs, when, and where its output goes,
without a network or minutes of pip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(os.name == "nt", reason="the stand-ins are POSIX shell scripts")

# python -c '<site-packages query>' prints a folder; anything else is pip: it chats on stdout like pip.
FAKE_PYTHON = """#!/bin/sh
if [ "$1" = "-c" ]; then echo "{site}"; exit 0; fi
echo "python $*" >> "{log}"
echo "Collecting something (pretend pip output)"
"""
FAKE_TOOL = """#!/bin/sh
echo "{name} $* inspector=${{AGNT_TRACES_INSPECTOR:-none}}" >> "{log}"
echo "{name} ran"
"""
FAKE_NPM = """#!/bin/sh
echo "npm $*" >> "{log}"
mkdir -p node_modules/.bin node_modules/@modelcontextprotocol/inspector
printf '#!/bin/sh\\n' > node_modules/.bin/mcp-inspector
chmod +x node_modules/.bin/mcp-inspector
echo '{{"version": "2.12.0"}}' > node_modules/@modelcontextprotocol/inspector/package.json
"""


def write_script(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)


class Project:
    def __init__(self, root: Path, with_npm: bool) -> None:
        self.root = root
        self.log = root / "calls.log"
        shutil.copy(ROOT / "run.py", root / "run.py")
        shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
        shutil.copytree(ROOT / "requirements", root / "requirements")
        site = root / "site-packages"
        site.mkdir()
        bin_ = root / ".venv" / "bin"
        write_script(bin_ / "python", FAKE_PYTHON.format(site=site, log=self.log))
        for tool in ("ruff", "mypy", "pytest", "agnt-traces"):
            write_script(bin_ / tool, FAKE_TOOL.format(name=tool, log=self.log))
        self.path_dir = root / "path"
        self.path_dir.mkdir()
        for tool in ("sh", "mkdir", "printf", "chmod", "cat"):
            found = shutil.which(tool)
            assert found, tool
            (self.path_dir / tool).symlink_to(found)
        if with_npm:
            write_script(self.path_dir / "npm", FAKE_NPM.format(log=self.log))

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        self.log.write_text("")
        env = {k: v for k, v in os.environ.items() if k != "AGNT_TRACES_INSPECTOR"}
        env["PATH"] = str(self.path_dir)
        done = subprocess.run(
            [sys.executable, str(self.root / "run.py"), *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            cwd=self.root,
        )
        assert done.returncode == 0, done.stderr
        return done

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines()

    def pip_calls(self) -> list[str]:
        return [c for c in self.calls() if c.startswith("python ")]


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path, with_npm=True)


def test_the_test_set_up_serves_demo_and_serve_without_reinstalling(project: Project) -> None:
    first = project.run("setup")
    installs = project.pip_calls()
    assert len(installs) == 3 and "dev.lock" in installs[1] and "runtime.lock" in installs[1]
    assert first.stdout == ""
    served = project.run("serve", "--db", "x.db")
    assert project.pip_calls() == []  # an MCP client launching run.py serve waits for no pip
    assert served.stdout == "agnt-traces ran\n"  # stdout is the MCP client's: nothing else on it
    project.run("demo")
    assert project.pip_calls() == []
    project.run("setup")
    assert project.pip_calls() == []


def test_runtime_first_then_test_installs_the_dev_tools(project: Project) -> None:
    project.run("serve")
    assert len(project.pip_calls()) == 3 and not any("dev.lock" in c for c in project.pip_calls())
    project.run("serve")
    assert project.pip_calls() == []
    project.run("setup")
    assert any("dev.lock" in c for c in project.pip_calls())
    project.run("serve")
    assert project.pip_calls() == []


def test_a_changed_lock_reinstalls_and_forgets_the_dev_tools(project: Project) -> None:
    project.run("setup")
    with (project.root / "requirements" / "runtime.lock").open("a") as fh:
        fh.write("# changed\n")
    project.run("serve")
    calls = project.pip_calls()
    assert len(calls) == 3 and not any("dev.lock" in c for c in calls)
    project.run("setup")  # the dev tools were installed against the old runtime lock: install again
    assert any("dev.lock" in c for c in project.pip_calls())


def test_the_first_set_up_shows_progress_on_stderr(project: Project) -> None:
    done = project.run("serve")
    steps = [line for line in done.stderr.splitlines() if line.startswith("» [")]
    assert [s[:7] for s in steps] == ["» [1/3]", "» [2/3]", "» [3/3]"]
    assert "setuptools" in steps[0] and "dependencies" in steps[1] and "agnt-traces" in steps[2]
    assert done.stderr.count("Collecting something") == 3  # pip's own output, not silenced, on stderr
    assert not any(" -q" in c for c in project.pip_calls())


def test_test_installs_the_pinned_inspector_once_and_hands_it_to_pytest(project: Project) -> None:
    project.run("test", "-k", "x")
    npm = [c for c in project.calls() if c.startswith("npm ")]
    assert len(npm) == 1 and "@modelcontextprotocol/inspector@2.12.0" in npm[0]
    binary = project.root / ".ci" / "node" / "node_modules" / ".bin" / "mcp-inspector"
    pytest_call = next(c for c in project.calls() if c.startswith("pytest "))
    assert pytest_call == f"pytest -k x inspector={binary}"
    project.run("test")
    assert not any(c.startswith("npm ") for c in project.calls())  # installed once
    assert f"inspector={binary}" in next(c for c in project.calls() if c.startswith("pytest"))


def test_test_without_npm_says_the_inspector_test_is_skipped(tmp_path: Path) -> None:
    project = Project(tmp_path, with_npm=False)
    done = project.run("test")
    assert "npm not found" in done.stderr and "test_inspector.py will be skipped" in done.stderr
    assert next(c for c in project.calls() if c.startswith("pytest")).endswith("inspector=none")


def test_ci_relies_on_run_py_for_the_inspector() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "npm install" not in ci and "python3 run.py test" in ci

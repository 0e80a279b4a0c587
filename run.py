#!/usr/bin/env python3
"""Set up and run AGNT Traces with nothing but Python (3.11+).

    python3 run.py demo      set up, then run the whole fix loop on the offline model
    python3 run.py test      set up, then run ruff, mypy and the test suite
    python3 run.py serve     set up, then run the MCP server over stdio (any agnt-traces arguments follow)
    python3 run.py bench S   set up, then run the benchmark script bench/S (arguments follow)

Setting up means: a virtual environment in .venv, every dependency installed from the hash-locked
files in requirements/ (pip --require-hashes), this package installed into it, and a check that
site-packages holds no unexpected .pth file (code that runs at every Python start). It is skipped
when nothing changed since the last run; the set-up for `test` (with the dev tools) also serves `demo`
and `serve`. Progress goes to stderr. `test` also installs the pinned MCP inspector into .ci/node where
npm exists (tests/server/test_inspector.py drives the server with it; without npm that test is skipped), and
Debian's chromium with apt-get where it is missing and apt-get runs as root (tests/web/test_web_browser.py
drives the web page with it; without it those tests are skipped), and the PostgreSQL server likewise
(the store tests start a throwaway cluster from its binaries; without it they fail, naming the reason,
unless AGNT_TRACES_SKIP_POSTGRES=1).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
REQUIREMENTS = ROOT / "requirements"
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")
# JSON: the sha256 of pyproject.toml and of each lock file installed. A set-up with the dev locks also
# satisfies one without them, so switching between `test` and `demo`/`serve` installs nothing.
STAMP = VENV / ".agnt-setup"
# .pth files that may exist in site-packages; anything else fails set-up (litellm 1.82.7/8 shipped one).
PTH_ALLOWED = ("distutils-precedence.pth", "__editable__.agnt_traces-")
# The official MCP inspector (Node.js) drives the fix loop in tests/server/test_inspector.py; installed where npm is.
INSPECTOR = "@modelcontextprotocol/inspector@2.12.0"
NODE_DIR = ROOT / ".ci" / "node"
# The browser tests drive Debian's chromium with Playwright (its own browser download cannot work here).
CHROMIUM = "/usr/bin/chromium"
# Where the distribution puts the PostgreSQL server binaries (tests/pgcluster.py looks there too).
PG_INITDB_GLOB = os.environ.get("AGNT_TRACES_PG_INITDB_GLOB", "/usr/lib/postgresql/*/bin/initdb")


def sh(*cmd: str | Path, **kw: object) -> None:
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT, **kw)  # type: ignore[call-overload]


def say(line: str) -> None:
    """Progress goes to stderr: over `run.py serve`, stdout belongs to the MCP client."""
    print(f"» {line}", file=sys.stderr, flush=True)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def installed() -> dict[str, str]:
    """What the stamp says is installed: lock file name (and "pyproject.toml") → sha256."""
    try:
        data = json.loads(STAMP.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def packages_in(lock: str) -> list[str]:
    lines = (REQUIREMENTS / lock).read_text().splitlines()
    return [line.split("==")[0] for line in lines if "==" in line and line[:1].isalnum()]


def setup(dev: bool) -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - run.py runs under whatever python3 the user has
        sys.exit(f"AGNT Traces needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    locks = ["build.lock", "runtime.lock"] + (["dev.lock"] if dev else [])
    want = {name: sha256(REQUIREMENTS / name) for name in locks} | {"pyproject.toml": sha256(ROOT / "pyproject.toml")}
    if not PY.exists():
        say("creating .venv (first run: installing every dependency takes a few minutes; later runs skip it)")
        venv.EnvBuilder(with_pip=True).create(VENV)
    have = installed()
    if any(have.get(name) != digest for name, digest in want.items()):
        install(locks)
        STAMP.write_text(json.dumps(want, indent=1))  # only what this set-up installed
    check_pth()


def install(locks: list[str]) -> None:
    """pip's own output (a line per package) goes to stderr, with a line per step before it."""
    pip = [PY, "-m", "pip", "--disable-pip-version-check", "install"]
    deps = [name for lock in locks[1:] for name in packages_in(lock)]
    say(f"[1/3] build tools: {', '.join(packages_in('build.lock'))} (requirements/build.lock, hash-checked)")
    sh(*pip, "--require-hashes", "-r", REQUIREMENTS / "build.lock", stdout=sys.stderr)
    say(
        f"[2/3] {len(deps)} dependencies from {', '.join('requirements/' + lock for lock in locks[1:])} "
        "(hash-checked; LiteLLM is the largest)"
    )
    sh(*pip, "--require-hashes", *[a for lock in locks[1:] for a in ("-r", REQUIREMENTS / lock)], stdout=sys.stderr)
    say("[3/3] agnt-traces itself (editable: changes under src/ need no reinstall)")
    sh(*pip, "--no-deps", "--no-build-isolation", "-e", ".", stdout=sys.stderr)


def inspector() -> Path | None:
    """The pinned MCP inspector's binary for tests/server/test_inspector.py: AGNT_TRACES_INSPECTOR if set, else
    installed into .ci/node with npm (once). None, and a note saying the test will be skipped, without npm."""
    if os.environ.get("AGNT_TRACES_INSPECTOR"):
        return Path(os.environ["AGNT_TRACES_INSPECTOR"])
    binary = NODE_DIR / "node_modules" / ".bin" / ("mcp-inspector.cmd" if os.name == "nt" else "mcp-inspector")
    manifest = NODE_DIR / "node_modules" / "@modelcontextprotocol" / "inspector" / "package.json"
    version = INSPECTOR.rsplit("@", 1)[1]
    try:
        if binary.exists() and json.loads(manifest.read_text()).get("version") == version:
            return binary
    except (OSError, ValueError):
        pass
    npm = shutil.which("npm")
    if npm is None:
        say("npm not found: tests/server/test_inspector.py will be skipped (install Node.js to run it)")
        return None
    say(f"installing the MCP inspector ({INSPECTOR}) into .ci/node for tests/server/test_inspector.py")
    NODE_DIR.mkdir(parents=True, exist_ok=True)
    cmd = [npm, "install", "--no-audit", "--no-fund", "--ignore-scripts", INSPECTOR]
    if subprocess.run(cmd, cwd=NODE_DIR, stdout=sys.stderr).returncode != 0 or not binary.exists():
        say("could not install the MCP inspector: tests/server/test_inspector.py will be skipped")
        return None
    return binary


def chromium() -> None:
    """Debian's chromium for the browser tests (tests/web/test_web_browser.py): installed with apt-get where it is
    missing and apt-get can run (as root); otherwise those tests are skipped, and say so."""
    if Path(CHROMIUM).exists():
        return
    apt = shutil.which("apt-get")
    if apt is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        say(f"no {CHROMIUM} and no root apt-get: the browser tests (tests/web/test_web_browser.py) will be SKIPPED")
        return
    say("installing Debian's chromium for the browser tests: apt-get update && apt-get install -y chromium")
    quiet = {"stdout": sys.stderr, "env": {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}}
    subprocess.run([apt, "update", "-qq"], **quiet)  # type: ignore[call-overload]
    if subprocess.run([apt, "install", "-y", "-qq", "chromium"], **quiet).returncode != 0:  # type: ignore[call-overload]
        say("could not install chromium: the browser tests (tests/web/test_web_browser.py) will be SKIPPED")


def postgres_server() -> None:
    """Install the PostgreSQL server (apt-get, as root) where its binaries are missing: the store tests
    start a throwaway cluster from them. Says on stderr what it does, or why it cannot."""
    if glob.glob(PG_INITDB_GLOB) or shutil.which("initdb") or os.environ.get("AGNT_TRACES_PG_BINDIR"):
        return
    if os.environ.get("AGNT_TRACES_SKIP_POSTGRES") == "1":
        say("PostgreSQL server not found: its tests will be skipped (AGNT_TRACES_SKIP_POSTGRES=1)")
        return
    apt = shutil.which("apt-get")
    if apt is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        say(
            "PostgreSQL server not found, and apt-get as root is not available to install it: the PostgreSQL "
            "tests will fail (install the postgresql package, or set AGNT_TRACES_SKIP_POSTGRES=1 to skip them)"
        )
        return
    say("PostgreSQL server not found: apt-get update && apt-get install -y postgresql (for the store tests)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in ([apt, "update"], [apt, "install", "-y", "--no-install-recommends", "postgresql"]):
        if subprocess.run(cmd, stdout=sys.stderr, stdin=subprocess.DEVNULL, env=env).returncode != 0:
            say(f"`{' '.join(cmd[1:3])}` failed: the PostgreSQL tests will fail, naming the reason")
            return


def site_packages() -> Path:
    out = subprocess.run(
        [PY, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(out.stdout.strip())


def check_pth() -> None:
    unexpected = [p.name for p in sorted(site_packages().glob("*.pth")) if not p.name.startswith(PTH_ALLOWED)]
    if unexpected:
        sys.exit(
            "refusing to run: unexpected .pth file(s) in site-packages: "
            + ", ".join(unexpected)
            + " — a .pth file runs code at every Python start; check where it came from"
        )


def main(argv: list[str]) -> int:
    command, rest = (argv[0], argv[1:]) if argv else ("demo", [])
    if command == "test":
        setup(dev=True)
        sh(BIN / "ruff", "check", "src", "tests", "bench", "run.py")
        sh(BIN / "ruff", "format", "--check", "src", "tests", "bench", "run.py")
        sh(BIN / "mypy")
        env = dict(os.environ)
        chromium()
        binary = inspector()
        postgres_server()
        if binary is not None:
            env["AGNT_TRACES_INSPECTOR"] = str(binary)
        return subprocess.run([BIN / "pytest", *rest], cwd=ROOT, env=env).returncode
    if command == "bench":
        setup(dev=True)
        scripts = sorted(p.name for p in (ROOT / "bench").glob("*.py") if not p.name.startswith("_"))
        if not rest or rest[0] not in scripts:
            print("usage: python3 run.py bench SCRIPT [ARGS]; scripts: " + ", ".join(scripts), file=sys.stderr)
            return 2
        return subprocess.run([PY, ROOT / "bench" / rest[0], *rest[1:]], cwd=ROOT).returncode
    if command in ("demo", "serve"):
        setup(dev=False)
        return subprocess.run([BIN / "agnt-traces", command, *rest], cwd=ROOT).returncode
    if command == "setup":
        setup(dev=True)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""Set up and run AGNT Traces with nothing but Python (3.11+).

    python3 run.py demo      set up, then run the whole fix loop on the offline model
    python3 run.py test      set up, then run ruff, mypy and the test suite
    python3 run.py serve     set up, then run the MCP server over stdio (any agnt-traces arguments follow)
    python3 run.py bench S   set up, then run the benchmark script bench/S (arguments follow)

Setting up means: a virtual environment in .venv, every dependency installed from the hash-locked
files in requirements/ (pip --require-hashes), this package installed into it, and a check that
site-packages holds no unexpected .pth file (code that runs at every Python start). It is skipped
when nothing changed since the last run.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".agnt-setup"
# .pth files that may exist in site-packages; anything else fails set-up (litellm 1.82.7/8 shipped one).
PTH_ALLOWED = ("distutils-precedence.pth", "__editable__.agnt_traces-")


def sh(*cmd: str | Path, **kw: object) -> None:
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT, **kw)  # type: ignore[call-overload]


def setup(dev: bool) -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - run.py runs under whatever python3 the user has
        sys.exit(f"AGNT Traces needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    locks = ["build.lock", "runtime.lock"] + (["dev.lock"] if dev else [])
    digest = hashlib.sha256()
    for name in [*locks, "../pyproject.toml"]:
        digest.update((ROOT / "requirements" / name).read_bytes())
    want = digest.hexdigest()
    if not PY.exists():
        print("» creating .venv", file=sys.stderr)
        venv.EnvBuilder(with_pip=True).create(VENV)
    if not (STAMP.exists() and STAMP.read_text() == want):
        print(f"» installing hash-locked dependencies ({', '.join(locks)})", file=sys.stderr)
        pip = [PY, "-m", "pip", "--disable-pip-version-check", "install", "-q"]
        sh(*pip, "--require-hashes", "-r", "requirements/build.lock")
        sh(*pip, "--require-hashes", *[a for lock in locks[1:] for a in ("-r", f"requirements/{lock}")])
        sh(*pip, "--no-deps", "--no-build-isolation", "-e", ".")
        STAMP.write_text(want)
    check_pth()


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
        return subprocess.run([BIN / "pytest", *rest], cwd=ROOT).returncode
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

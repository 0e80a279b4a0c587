"""A throwaway PostgreSQL cluster for tests and benchmarks, from the distribution's server binaries.

``PgCluster.start()`` runs ``initdb`` into a temporary folder (as the ``postgres`` user when we are root:
initdb refuses root), starts the server on 127.0.0.1 with a free port and its socket in that folder,
and ``stop()`` ends it and removes the folder. ``create_database()`` makes a fresh, empty database
(``TEMPLATE template0``: every test migrates from nothing) and ``drop_database()`` removes it.

Where PostgreSQL cannot be had, ``PgUnavailable`` says why; the test fixtures then fail loudly, unless
``AGNT_TRACES_SKIP_POSTGRES=1`` asks to skip those tests (with the reason).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PgCluster", "PgUnavailable", "find_bindir"]


class PgUnavailable(RuntimeError):
    """PostgreSQL cannot be started here: the message says why and how to fix it."""


_INSTALL = (
    "install the server (Debian/Ubuntu: apt-get install postgresql; `python3 run.py test` does it where it can), "
    "or set AGNT_TRACES_SKIP_POSTGRES=1 to skip the PostgreSQL tests"
)


def find_bindir() -> Path:
    """The folder of ``initdb``/``pg_ctl``: AGNT_TRACES_PG_BINDIR, the newest /usr/lib/postgresql/*/bin, or PATH.

    Raises:
        PgUnavailable: no PostgreSQL server binaries are installed.
    """
    override = os.environ.get("AGNT_TRACES_PG_BINDIR")
    candidates = [Path(override)] if override else []
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name or 0))
    candidates += [Path(p) for p in reversed(versions)]
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    raise PgUnavailable(f"no PostgreSQL server binaries (initdb, pg_ctl) were found: {_INSTALL}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgCluster:
    bindir: Path
    datadir: Path
    port: int
    as_user: str | None  # "postgres" when we run as root

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    @classmethod
    def start(cls, *, fast: bool = True) -> PgCluster:
        """Start a new cluster (``fast``: no fsync, for tests; the benchmarks pass False).

        Raises:
            PgUnavailable: no binaries, or initdb or the server failed (the message has their output).
        """
        bindir = find_bindir()
        root = os.geteuid() == 0
        as_user = "postgres" if root else None
        if root and shutil.which("runuser") is None:
            raise PgUnavailable("running as root, and runuser (to run initdb as 'postgres') is missing")
        base = Path(tempfile.mkdtemp(prefix="agnt-pg-"))
        datadir = base / "data"
        if root:
            shutil.chown(base, user="postgres")
        cluster = cls(bindir, datadir, _free_port(), as_user)
        try:
            cluster._run(
                str(bindir / "initdb"), "-D", str(datadir), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                "--locale=C.UTF-8",
            )  # fmt: skip
            options = f"-p {cluster.port} -k {base} -c listen_addresses=127.0.0.1 -c max_connections=200"
            if fast:
                options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            log = str(base / "log")
            cluster._run(str(bindir / "pg_ctl"), "-D", str(datadir), "-o", options, "-l", log, "-w", "start")
        except BaseException:
            shutil.rmtree(base, ignore_errors=True)
            raise
        return cluster

    def _run(self, *cmd: str) -> None:
        full = ["runuser", "-u", self.as_user, "--", *cmd] if self.as_user else list(cmd)
        done = subprocess.run(full, capture_output=True, text=True, timeout=120, cwd="/")
        if done.returncode != 0:
            log = self.datadir.parent / "log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise PgUnavailable(
                f"{Path(cmd[0]).name} failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-2000:]} {tail}"
            )

    def stop(self) -> None:
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.datadir.parent, ignore_errors=True)

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; its URL."""
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

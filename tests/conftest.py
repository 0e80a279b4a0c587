"""Shared fixtures: asyncio for anyio tests, a fresh database per test (a SQLite file, or a PostgreSQL
database on a throwaway cluster for tests marked ``both_stores``), the local model server, and a guard
that fails any connection beyond loopback.

A module or test marked ``both_stores`` runs once per store: ``store_kind`` is "sqlite" or "postgres",
and ``db_path`` is a file path or a ``postgresql://`` URL. ``sqlite_only`` exempts a test of such a
module (it reads the SQLite file itself). Where PostgreSQL cannot be started, the postgres runs FAIL
with the reason, unless AGNT_TRACES_SKIP_POSTGRES=1 (then they are skipped with it)."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import netguard
from agnt_traces.app import App, open_app
from agnt_traces.config import Settings
from modelserver import model_server  # noqa: F401
from pgcluster import PgCluster, PgUnavailable

netguard.install()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


STORE_KINDS = ["sqlite", "postgres"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "both_stores: run the test once on SQLite and once on PostgreSQL")
    config.addinivalue_line("markers", "sqlite_only: a test of a both_stores module that reads the SQLite file")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    both = metafunc.definition.get_closest_marker("both_stores") is not None
    only = metafunc.definition.get_closest_marker("sqlite_only") is not None
    if both and not only and "store_kind" in metafunc.fixturenames:
        metafunc.parametrize("store_kind", STORE_KINDS, indirect=True)


@pytest.fixture
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """One throwaway PostgreSQL cluster for the whole run (started on first use)."""
    try:
        cluster = PgCluster.start()
    except PgUnavailable as exc:
        reason = f"PostgreSQL is not available: {exc}"
        if os.environ.get("AGNT_TRACES_SKIP_POSTGRES") == "1":
            pytest.skip(reason + " (skipped: AGNT_TRACES_SKIP_POSTGRES=1)")
        pytest.fail(reason, pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped after it."""
    url = pg_cluster.create_database()
    try:
        yield url
    finally:
        pg_cluster.drop_database(url)


@pytest.fixture
def db_path(tmp_path: Path, store_kind: str, request: pytest.FixtureRequest) -> str:
    if store_kind == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return str(tmp_path / "traces.db")


@pytest.fixture
def settings(db_path: str) -> Settings:
    return Settings(db_path=db_path, tenant="default", model_timeout=5.0)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[App]:
    async with open_app(settings) as a:
        yield a


@pytest.fixture(autouse=True)
def no_network() -> Iterator[None]:
    """Fail the test if anything tried to reach beyond loopback (even if a library swallowed the error)."""
    netguard.take_violations()
    yield
    netguard.check()

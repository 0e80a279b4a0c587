"""Shared fixtures: asyncio for anyio tests, a fresh SQLite file per test, the local model server,
and a guard that fails any connection beyond loopback."""

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

netguard.install()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def db_path(tmp_path: Path) -> str:
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

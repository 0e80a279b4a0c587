"""The SQLite store's two connections on the event loop (``_read_now`` / ``_write_now``): picking a prompt to
run and writing a trace this server made skip the thread hop, and never hold the loop up.

- what they read is what another process just committed (no cache to go stale);
- another writer holding the database sends the write to the thread writer, which waits for it, while the
  loop goes on;
- a failed write on the loop leaves nothing behind and is done again by the thread writer;
- a big trace, a client's trace and a batch go through the thread writer as before;
- a statement on the loop reader is interrupted after a few thousand steps.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from agnt_traces.app import App, open_app
from agnt_traces.config import Settings
from agnt_traces.ids import new_id
from agnt_traces.models import Trace
from agnt_traces.store import sqlite as sqlite_module
from agnt_traces.store.sqlite import SqliteStore
from factories import trace_payload

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]


def content(text: str) -> dict[str, object]:
    return {
        "blocks": [{"id": "intro", "role": "system", "content": text}],
        "model": {"provider": "agnt-local", "name": "echo"},
    }


@pytest.fixture
async def app(tmp_path: Path) -> Any:
    async with open_app(Settings(db_path=str(tmp_path / "t.db"))) as a:
        yield a


def store_of(app: App) -> SqliteStore:
    assert isinstance(app.store, SqliteStore)
    return app.store


class NoThread:
    """Stands in for a connection pool: any call through a thread fails the test."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.calls = 0

    async def run(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return await self.real.run(*args, **kwargs)


def made_trace(output: str = "fine") -> Trace:
    fields = {**trace_payload(output=output), "id": new_id(), "createdAt": "2026-11-30T12:00:00Z", "source": "run"}
    return Trace.model_validate(fields)


async def test_picking_and_recording_a_run_take_no_thread(app: App) -> None:
    await app.prompts.upsert("default", "support", content("hello"))
    await app.prompts.publish("default", "support")
    await app.prompts.pick("default", "support", label="production")  # the content is cached from here on
    store = store_of(app)
    readers, writer = NoThread(store._readers), NoThread(store._writer)
    store._readers, store._writer = readers, writer  # type: ignore[assignment]
    ran = await app.prompts.run("default", "support")
    assert (readers.calls, writer.calls) == (0, 0)
    store._readers, store._writer = readers.real, writer.real
    assert (await app.traces.get("default", ran.trace.id)).prompt_version == 1


async def test_a_publish_by_another_process_is_run_at_once(app: App, tmp_path: Path) -> None:
    await app.prompts.upsert("default", "support", content("one"))
    await app.prompts.publish("default", "support")
    assert (await app.prompts.run("default", "support")).trace.prompt_version == 1
    other = textwrap.dedent(
        f"""
        import asyncio
        from agnt_traces.app import open_app
        from agnt_traces.config import Settings

        async def main():
            async with open_app(Settings(db_path={str(tmp_path / "t.db")!r})) as app:
                await app.prompts.upsert("default", "support", {content("two")!r})
                await app.prompts.publish("default", "support")

        asyncio.run(main())
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    await anyio.run_process([sys.executable, "-c", other], check=True, env=env)
    ran = await app.prompts.run("default", "support")
    assert ran.trace.prompt_version == 2 and "two" in (ran.trace.manifest.system or "")


async def test_another_writer_holding_the_database_sends_the_write_to_the_thread_while_the_loop_runs(
    app: App, tmp_path: Path
) -> None:
    store = store_of(app)
    holder = sqlite3.connect(str(tmp_path / "t.db"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's write transaction
    ticks: list[float] = []
    done: list[Trace] = []

    async def ticker() -> None:
        while not done:
            ticks.append(time.monotonic())
            await anyio.sleep(0.01)

    async def record() -> None:
        done.append(await app.traces.record("default", made_trace()))

    async def release() -> None:
        await anyio.sleep(0.5)
        holder.execute("COMMIT")

    writer = NoThread(store._writer)
    store._writer = writer  # type: ignore[assignment]
    started = time.monotonic()
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            tg.start_soon(record)
            tg.start_soon(release)
    store._writer = writer.real
    holder.close()
    assert writer.calls == 1  # the thread writer waited for the lock
    assert time.monotonic() - started >= 0.5
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert len(ticks) >= 30 and max(gaps) < 0.25, max(gaps)  # the loop was never held up
    assert (await app.traces.get("default", done[0].id)).output == "fine"


async def test_a_failed_write_on_the_loop_leaves_nothing_and_is_done_again_by_the_thread(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = store_of(app)
    real = SqliteStore._insert_traces_sync
    failures: list[int] = []

    def once_broken(self: SqliteStore, db: sqlite3.Connection, tenant: str, records: list[Any]) -> Any:
        result = real(self, db, tenant, records)  # the rows are written, then the write fails
        if db is store._loop_writer and not failures:
            failures.append(1)
            assert store._manifest_ids  # a manifest id was cached in the failed transaction
            raise sqlite3.OperationalError("disk I/O error")
        return result

    monkeypatch.setattr(SqliteStore, "_insert_traces_sync", once_broken)
    trace = await app.traces.record("default", made_trace())
    assert failures == [1]
    db = sqlite3.connect(store.path)
    assert db.execute("SELECT count(*) FROM traces WHERE id = ?", (trace.id,)).fetchone() == (1,)
    assert db.execute("SELECT count(*) FROM manifests").fetchone() == (1,)
    assert (await app.traces.get("default", trace.id)).output == "fine"


async def test_big_traces_client_traces_and_batches_go_through_the_thread(app: App) -> None:
    store = store_of(app)
    writer = NoThread(store._writer)
    store._writer = writer  # type: ignore[assignment]
    await app.traces.record("default", made_trace("x" * 40_000))  # past NOW_BYTES as JSON
    assert writer.calls == 1
    await app.traces.ingest_many("default", [trace_payload(id="c-1")])  # a client's trace
    assert writer.calls == 2
    await app.traces.record("default", made_trace("small"))
    assert writer.calls == 2
    store._writer = writer.real
    assert sqlite_module.NOW_BYTES < 40_000


async def test_a_long_statement_on_the_loop_reader_is_interrupted(app: App) -> None:
    store = store_of(app)
    count = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) SELECT count(*) FROM c"
    assert store._read_now(count, (10,)) == [(10,)]
    started = time.monotonic()
    assert store._read_now(count, (10_000_000,)) is None  # the caller reads through a thread instead
    assert time.monotonic() - started < 0.05
    assert store._read_now(count, (10,)) == [(10,)]  # and the connection is fine afterwards


async def test_the_loop_connections_never_wait_or_checkpoint(app: App) -> None:
    store = store_of(app)
    for db in (store._loop_reader, store._loop_writer):
        assert db is not None
        assert db.execute("PRAGMA busy_timeout").fetchone() == (0,)
        assert db.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
    assert store._loop_reader is not None
    with pytest.raises(sqlite3.OperationalError):
        store._loop_reader.execute("CREATE TABLE nope (x)")  # read only


async def test_a_memory_database_has_no_loop_connections_and_still_runs() -> None:
    async with open_app(Settings(db_path=":memory:")) as app:
        store = store_of(app)
        assert store._loop_reader is None and store._loop_writer is None
        trace = await app.traces.record("default", made_trace())
        stored = await store._writer.run(lambda db: db.execute("SELECT id FROM traces").fetchall())
        assert stored == [(trace.id,)]


async def test_the_wal_is_checkpointed_although_only_the_loop_writes(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop's writer never checkpoints: every few writes it asks the thread writer to, so a server that
    only runs prompts keeps its WAL bounded."""
    from agnt_traces.store import sqlite_base

    monkeypatch.setattr(sqlite_base, "LOOP_WRITES_PER_CHECKPOINT", 8)
    store = store_of(app)
    writer = NoThread(store._writer)
    store._writer = writer  # type: ignore[assignment]
    largest = 0
    for i in range(600):
        await app.traces.record("default", made_trace(f"answer {i} " + "x" * 3000))
        await anyio.lowlevel.checkpoint()  # the checkpoint runs on its own task
        largest = max(largest, os.stat(store.path + "-wal").st_size)
    if store._checkpoint_task is not None:
        await store._checkpoint_task
    store._writer = writer.real
    assert 75 <= writer.calls < 200  # the 75 checkpoints, and the writes queued behind them
    assert largest < 4 << 20, largest  # without them: ~20 MB of WAL for these 600 traces

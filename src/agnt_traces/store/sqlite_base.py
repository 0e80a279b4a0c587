"""Plumbing shared by the SQLite store's parts: connections, transactions, tenants, contents."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self, TypeVar

import aiosqlite

from ..ids import now_ms
from ..models import PromptContent, canonical_json
from . import migrations
from .dbfile import check_db_path, open_failure

__all__ = ["SqliteBase"]

logger = logging.getLogger(__name__)
T = TypeVar("T")


def _connect_sync(path: str) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None, check_same_thread=False)


def _configure(db: sqlite3.Connection) -> None:
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL mode
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("PRAGMA busy_timeout=10000")
    db.execute("PRAGMA cache_size=-131072")  # up to 128 MB of pages: the sort indexes stay in memory
    db.execute("PRAGMA temp_store=MEMORY")
    db.execute("PRAGMA mmap_size=1073741824")
    # A batch touches thousands of index pages; checkpointing after every 4 MB of WAL (the default)
    # copied them back after nearly every transaction and halved ingest. Checkpoint every 64 MB, and
    # truncate the WAL back to 64 MB after that.
    db.execute("PRAGMA wal_autocheckpoint=16384")
    db.execute("PRAGMA journal_size_limit=67108864")


class SqliteBase:
    """Connections, transactions, tenants and content-addressed prompt contents."""

    def __init__(self, path: str, writer: aiosqlite.Connection, reader: aiosqlite.Connection) -> None:
        self.path = path
        self._writer = writer
        self._reader = reader
        self._tenant_ids: dict[str, int] = {}
        self._manifest_ids: dict[bytes, int] = {}

    # -- plumbing ---------------------------------------------------------------------------------

    @classmethod
    async def open(cls, path: str | Path) -> Self:
        """Open (creating it if missing) and migrate the database at ``path``.

        Raises:
            InvalidArgument: the path is a directory, not a SQLite database, unreadable or cannot be
                created; the message names the path and the problem.
        """
        path = str(path)
        check_db_path(path)  # one readable sentence instead of an error from SQLite's connection thread
        try:
            if path != ":memory:":
                Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, at open
            writer = await aiosqlite.connect(path, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise open_failure(path, exc) from None
        try:
            await writer._execute(_configure, writer._conn)
            await writer._execute(migrations.migrate, writer._conn)
            reader = await aiosqlite.connect(path, isolation_level=None)
            await reader._execute(_configure, reader._conn)
            await reader.execute("PRAGMA query_only=ON")
        except (OSError, sqlite3.DatabaseError) as exc:
            await writer.close()
            raise open_failure(path, exc) from None
        except BaseException:
            await writer.close()
            raise
        reader.row_factory = sqlite3.Row
        return cls(path, writer, reader)

    async def close(self) -> None:
        try:
            await self._writer.execute("PRAGMA optimize")
        except Exception:  # pragma: no cover - best effort on shutdown
            logger.debug("PRAGMA optimize failed on close", exc_info=True)
        await self._reader.close()
        await self._writer.close()

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(db, *args)`` on the writer thread inside one IMMEDIATE transaction."""

        def tx(db: sqlite3.Connection) -> T:
            db.execute("BEGIN IMMEDIATE")
            try:
                result = fn(db, *args)
            except BaseException:
                db.execute("ROLLBACK")
                self._manifest_ids.clear()  # ids cached in this transaction may name rolled-back rows
                self._tenant_ids.clear()
                raise
            db.execute("COMMIT")
            return result

        # aiosqlite runs each call on its own thread in order; this queues one whole transaction.
        result: T = await self._writer._execute(tx, self._writer._conn)
        return result

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        result: T = await self._reader._execute(fn, self._reader._conn, *args)
        return result

    async def _fetchall(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
        return list(await self._reader.execute_fetchall(sql, params))

    async def _fetchone(self, sql: str, params: Any = ()) -> sqlite3.Row | None:
        rows = await self._fetchall(sql, params)
        return rows[0] if rows else None

    def _tenant_id_sync(self, db: sqlite3.Connection, tenant: str) -> int:
        tid = self._tenant_ids.get(tenant)
        if tid is None:
            row = db.execute("SELECT id FROM tenants WHERE name = ?", (tenant,)).fetchone()
            if row is None:
                row = db.execute(
                    "INSERT INTO tenants(name, created_at) VALUES (?, ?) RETURNING id", (tenant, now_ms())
                ).fetchone()
            tid = int(row[0])
            self._tenant_ids[tenant] = tid
        return tid

    async def _tenant_id(self, tenant: str) -> int | None:
        """The tenant's id for reads; None when the tenant has no data yet."""
        tid = self._tenant_ids.get(tenant)
        if tid is None:
            row = await self._fetchone("SELECT id FROM tenants WHERE name = ?", (tenant,))
            if row is None:
                return None
            tid = int(row[0])
            self._tenant_ids[tenant] = tid
        return tid

    # -- content-addressed prompt contents ---------------------------------------------------------

    async def put_content(self, tenant: str, content: PromptContent) -> str:
        return await self._write(self._put_content_sync, tenant, content)

    def _put_content_sync(self, db: sqlite3.Connection, tenant: str, content: PromptContent) -> str:
        tid = self._tenant_id_sync(db, tenant)
        etag = content.etag
        db.execute(
            "INSERT INTO contents(tenant_id, etag, content, created_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (tid, etag, canonical_json(content.canonical()), now_ms()),
        )
        return etag

    async def get_content(self, tenant: str, etag: str) -> PromptContent | None:
        tid = await self._tenant_id(tenant)
        if tid is None:
            return None
        row = await self._fetchone("SELECT content FROM contents WHERE tenant_id = ? AND etag = ?", (tid, etag))
        return PromptContent.model_validate_json(row[0]) if row else None

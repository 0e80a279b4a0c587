"""Plumbing shared by the SQLite store's parts: connections, transactions, tenants, contents."""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self, TypeVar

from ..errors import InvalidArgument
from ..ids import now_ms
from ..models import PromptContent, canonical_json
from . import migrations
from .connections import ConnectionPool, FulltextGate
from .cursors import CursorKeys

__all__ = ["SqliteBase"]

logger = logging.getLogger(__name__)
T = TypeVar("T")


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


def _configure_reader(db: sqlite3.Connection) -> None:
    _configure(db)
    db.execute("PRAGMA query_only=ON")
    db.row_factory = sqlite3.Row


def _fetchall_sync(db: sqlite3.Connection, sql: str, params: Any) -> list[sqlite3.Row]:
    return list(db.execute(sql, params).fetchall())


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise InvalidArgument(f"{name}={raw!r} is not a number") from None


class SqliteBase:
    """Connections, transactions, tenants and content-addressed prompt contents."""

    def __init__(self, path: str, writer: ConnectionPool, readers: ConnectionPool, cursor_key: bytes) -> None:
        self.path = path
        self._writer = writer
        self._readers = readers
        self._cursors = CursorKeys(cursor_key)
        self._fulltext_gate = FulltextGate(readers.size - 1)  # one reader is always left for the rest
        self._tenant_ids: dict[str, int] = {}
        self._manifest_ids: dict[bytes, int] = {}
        self._fts_tables: set[int] = set()  # the writer's: full-text tables made (maybe not yet committed)
        self._fts_seen: set[int] = set()  # the readers': full-text tables seen committed

    # -- plumbing ---------------------------------------------------------------------------------

    @classmethod
    async def open(cls, path: str | Path, *, query_budget_ms: float | None = None, readers: int | None = None) -> Self:
        """Open (creating and migrating) the database file.

        ``query_budget_ms`` (default ``AGNT_TRACES_QUERY_BUDGET_MS``, else 2000) bounds every read;
        ``readers`` (default ``AGNT_TRACES_READERS``, else 4) is the number of reader connections.

        Raises:
            InvalidArgument: a setting is out of range.
        """
        path = str(path)
        budget = query_budget_ms if query_budget_ms is not None else _env_number("AGNT_TRACES_QUERY_BUDGET_MS", 2000)
        n_readers = readers if readers is not None else int(_env_number("AGNT_TRACES_READERS", 4))
        if not 1 <= budget <= 3_600_000:
            raise InvalidArgument(f"AGNT_TRACES_QUERY_BUDGET_MS={budget:g} is out of range: use 1 to 3600000 (ms)")
        if not 1 <= n_readers <= 64:
            raise InvalidArgument(f"AGNT_TRACES_READERS={n_readers} is out of range: use 1 to 64")
        if path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, at open
        writer = await ConnectionPool.open(path, 1, _configure)
        try:
            await writer.run(migrations.migrate)
            cursor_key = await writer.run(migrations.secret, "cursor")
            reader_pool = await ConnectionPool.open(path, n_readers, _configure_reader, budget_ms=budget)
        except BaseException:
            await writer.close()
            raise
        return cls(path, writer, reader_pool, cursor_key)

    async def close(self) -> None:
        try:
            await self._writer.run(lambda db: db.execute("PRAGMA optimize"))
        except Exception:  # pragma: no cover - best effort on shutdown
            logger.debug("PRAGMA optimize failed on close", exc_info=True)
        await self._readers.close()
        await self._writer.close()

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(db, *args)`` on the writer connection inside one IMMEDIATE transaction."""

        def tx(db: sqlite3.Connection) -> T:
            db.execute("BEGIN IMMEDIATE")
            try:
                result = fn(db, *args)
            except BaseException:
                db.execute("ROLLBACK")
                self._manifest_ids.clear()  # ids cached in this transaction may name rolled-back rows
                self._tenant_ids.clear()
                self._fts_tables.clear()
                raise
            db.execute("COMMIT")
            return result

        # The writer is a pool of one: whole transactions run one after another, in call order.
        return await self._writer.run(tx)

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(db, *args)`` on a free reader connection, within the query budget.

        Raises:
            ReadBudgetExceeded: the read ran past the budget.
        """
        return await self._readers.run(fn, *args)

    async def _fetchall(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
        return await self._read(_fetchall_sync, sql, params)

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

    def _tenant_id_read_sync(self, db: sqlite3.Connection, tenant: str) -> int | None:
        """The tenant's id on a reader connection; None when the tenant has no data yet."""
        tid = self._tenant_ids.get(tenant)
        if tid is None:
            row = db.execute("SELECT id FROM tenants WHERE name = ?", (tenant,)).fetchone()
            if row is None:
                return None
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

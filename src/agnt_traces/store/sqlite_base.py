"""Plumbing shared by the SQLite store's parts: connections, transactions, tenants, contents."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self, TypeVar

import anyio

from ..errors import AgntError, InvalidArgument, StorageFull, StoreUnavailable
from ..ids import now_ms
from ..logs import log_failure
from ..models import PromptContent, canonical_json
from . import migrations
from .connections import ConnectionPool, FulltextGate
from .cursors import CursorKeys
from .dbfile import check_db_path, open_failure

__all__ = ["SqliteBase"]

logger = logging.getLogger(__name__)
T = TypeVar("T")

FileId = tuple[int, int]  # (st_dev, st_ino)

_LOST = (
    "the database file was deleted or replaced while the server was running: writes are refused so that "
    "nothing is acknowledged and then lost; restore the file or restart the server (the server log names the file)"
)
_FULL = (
    "the disk that holds the database is full: nothing of this call was stored; free space on the server's disk, "
    "then retry"
)
_IO = "the database cannot be written (I/O error): nothing of this call was stored; the server log has the details"


def _file_id(path: str) -> FileId | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino)


def _sqlite_code(exc: BaseException) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None  # the primary code of an extended one


def _configure(db: sqlite3.Connection) -> None:
    # A new database gets 8 KiB pages (no effect on an existing one): a page holds ~20 traces rather than ~10,
    # so less of it is left over at its end (~1 % of the file).
    db.execute("PRAGMA page_size=8192")
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
    (page_size,) = db.execute("PRAGMA page_size").fetchone()
    db.execute(f"PRAGMA wal_autocheckpoint={(64 << 20) // int(page_size)}")
    db.execute("PRAGMA journal_size_limit=67108864")


def _configure_reader(db: sqlite3.Connection) -> None:
    _configure(db)
    db.execute("PRAGMA query_only=ON")
    db.row_factory = sqlite3.Row


#: A statement on the loop's connection that runs this many virtual machine steps is interrupted.
LOOP_READ_STEPS = 5_000
#: Every this many writes on the loop, the thread writer checkpoints the WAL (the loop's writer never does;
#: the thread writer's own ``wal_autocheckpoint`` only looks after its own writes). A run's trace adds
#: 100-300 KB of WAL, so the WAL stays within tens of MB however few writes go through the thread.
LOOP_WRITES_PER_CHECKPOINT = 128


def _open_loop_connection(path: str, write: bool) -> sqlite3.Connection:
    """A connection for :meth:`SqliteBase._read_now` or :meth:`SqliteBase._write_now` (used only on the
    event loop's thread): it never waits for a lock, and never checkpoints the WAL."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        _configure(db)
        db.execute("PRAGMA busy_timeout=0")
        db.execute("PRAGMA wal_autocheckpoint=0")
        db.execute("PRAGMA cache_size=-8192")
        if not write:
            db.execute("PRAGMA query_only=ON")
            db.set_progress_handler(lambda: 1, LOOP_READ_STEPS)
    except BaseException:
        db.close()
        raise
    return db


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

    def __init__(
        self,
        path: str,
        writer: ConnectionPool,
        readers: ConnectionPool,
        cursor_key: bytes,
        loop_reader: sqlite3.Connection | None = None,
        loop_writer: sqlite3.Connection | None = None,
    ) -> None:
        self.path = path
        self._writer = writer
        self._readers = readers
        self._loop_reader = loop_reader  # see _read_now
        self._loop_writer = loop_writer  # see _write_now
        self._checkpoint_task: asyncio.Task[None] | None = None
        self._loop_writes = 0  # since the last checkpoint asked of the thread writer
        self._cursors = CursorKeys(cursor_key)
        self._fulltext_gate = FulltextGate(readers.size - 1)  # one reader is always left for the rest
        self._tenant_ids: dict[str, int] = {}
        self._manifest_ids: dict[bytes, int] = {}
        self._fts_tables: set[int] = set()  # the writer's: full-text tables made (maybe not yet committed)
        self._fts_seen: set[int] = set()  # the readers': full-text tables seen committed
        # The files this store writes, by identity: a path that stops naming them (deleted, replaced) means
        # every further write would go to a file nobody will ever open again.
        self._on_disk = path != ":memory:" and not path.startswith("file:")
        self._file_ids: dict[str, FileId | None] = {}
        if self._on_disk:
            self._file_ids = {path: _file_id(path), path + "-wal": _file_id(path + "-wal")}
        self._lost: str | None = None  # sticky: once the file is gone, this process can never write safely
        self._disk_full_at: float | None = None  # the last write that failed with SQLITE_FULL, until one succeeds

    # -- plumbing ---------------------------------------------------------------------------------

    @classmethod
    async def open(cls, path: str | Path, *, query_budget_ms: float | None = None, readers: int | None = None) -> Self:
        """Open (creating and migrating) the database file.

        ``query_budget_ms`` (default ``AGNT_TRACES_QUERY_BUDGET_MS``, else 2000) bounds every read;
        ``readers`` (default ``AGNT_TRACES_READERS``, else 4) is the number of reader connections.

        Raises:
            InvalidArgument: a setting is out of range; or the path is a directory, not a SQLite database,
                unreadable or cannot be created (the message names the path and the problem).
        """
        path = str(path)
        check_db_path(path)  # one readable sentence instead of an error from SQLite's connection thread
        budget = query_budget_ms if query_budget_ms is not None else _env_number("AGNT_TRACES_QUERY_BUDGET_MS", 2000)
        n_readers = readers if readers is not None else int(_env_number("AGNT_TRACES_READERS", 4))
        if not 1 <= budget <= 3_600_000:
            raise InvalidArgument(f"AGNT_TRACES_QUERY_BUDGET_MS={budget:g} is out of range: use 1 to 3600000 (ms)")
        if not 1 <= n_readers <= 64:
            raise InvalidArgument(f"AGNT_TRACES_READERS={n_readers} is out of range: use 1 to 64")
        try:
            if path != ":memory:":
                Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, at open
            writer = await ConnectionPool.open(path, 1, _configure)
        except (OSError, sqlite3.Error) as exc:
            raise open_failure(path, exc) from None
        try:
            await writer.run(migrations.migrate)
            cursor_key = await writer.run(migrations.secret, "cursor")
            reader_pool = await ConnectionPool.open(path, n_readers, _configure_reader, budget_ms=budget)
        except (OSError, sqlite3.DatabaseError) as exc:
            await writer.close()
            raise open_failure(path, exc) from None
        except BaseException:
            await writer.close()
            raise
        loop_reader = loop_writer = None
        if path != ":memory:" and not path.startswith("file:"):
            try:
                loop_reader = await anyio.to_thread.run_sync(_open_loop_connection, path, False)
                loop_writer = await anyio.to_thread.run_sync(_open_loop_connection, path, True)
            except (OSError, sqlite3.Error):  # reads and writes go through threads as before
                logger.debug("no loop connections", exc_info=True)
        return cls(path, writer, reader_pool, cursor_key, loop_reader, loop_writer)

    async def close(self) -> None:
        try:
            await self._writer.run(lambda db: db.execute("PRAGMA optimize"))
        except Exception:  # pragma: no cover - best effort on shutdown
            logger.debug("PRAGMA optimize failed on close", exc_info=True)
        if self._checkpoint_task is not None:
            await self._checkpoint_task
        for db in (self._loop_reader, self._loop_writer):
            if db is not None:
                db.close()
        self._loop_reader = self._loop_writer = None
        await self._readers.close()
        await self._writer.close()

    # -- the file under the store ------------------------------------------------------------------

    def _file_problem(self) -> str | None:
        """Why writing is unsafe now (the database file deleted or replaced), or None. A few ``stat`` calls."""
        if self._lost is not None or not self._on_disk:
            return self._lost
        for name, known in self._file_ids.items():
            now = _file_id(name)
            if known is None:  # the WAL appears with the first write: remember it from then on
                self._file_ids[name] = now
            elif now != known:
                self._lost = _LOST
                logger.error(
                    "database file %s was %s while the server was running; refusing writes",
                    name,
                    "deleted" if now is None else "replaced",
                )
        return self._lost

    def _check_file(self) -> None:
        problem = self._file_problem()
        if problem is not None:
            raise StoreUnavailable(problem)

    def _storage_error(self, exc: BaseException) -> AgntError | None:
        """Our error for a SQLite failure of the storage itself (disk full, I/O), or None for any other."""
        code = _sqlite_code(exc)
        if code == sqlite3.SQLITE_FULL:
            self._disk_full_at = time.monotonic()
            logger.error("database %s: disk full; the write was refused", self.path)
            return StorageFull(_FULL)
        if code in (sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_CORRUPT):
            logger.error("database %s: write failed (%s)", self.path, exc)
            return StoreUnavailable(self._file_problem() or _IO)
        return None

    async def health(self) -> str | None:
        """None when the store can take writes; else the reason, for ``/healthz``."""
        problem = self._file_problem()
        if problem is not None:
            return problem
        if self._disk_full_at is not None:
            return (
                "the disk that holds the database is full (the last write failed and none succeeded since): "
                "free space on the server's disk"
            )
        await self._fetchone("SELECT 1 FROM tenants LIMIT 1")  # the database answers
        return None

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(db, *args)`` on the writer connection inside one IMMEDIATE transaction.

        The database file is checked before the transaction and after the commit: a write into a file that
        was deleted or replaced is never acknowledged.

        Raises:
            StoreUnavailable: the file was deleted or replaced, or an I/O error (HTTP 503, code internal).
            StorageFull: the disk is full; nothing was written (HTTP 507, code internal).
        """

        def tx(db: sqlite3.Connection) -> T:
            self._check_file()
            try:
                db.execute("BEGIN IMMEDIATE")
                result = fn(db, *args)
                db.execute("COMMIT")
            except BaseException as exc:
                self._forget_uncommitted()
                if db.in_transaction:  # SQLite rolls back by itself after some errors (e.g. a full disk)
                    try:
                        db.execute("ROLLBACK")
                    except sqlite3.Error:
                        log_failure(logger, "rollback failed", level=logging.WARNING)
                mapped = self._storage_error(exc) if isinstance(exc, sqlite3.Error) else None
                if mapped is not None:
                    raise mapped from None
                raise
            self._disk_full_at = None
            self._check_file()  # committed into a deleted file: lost as soon as we close, so not acknowledged
            return result

        # The writer is a pool of one: whole transactions run one after another, in call order.
        return await self._writer.run(tx)

    def _forget_uncommitted(self) -> None:
        """A write transaction failed: forget the ids cached in it, which may name rows it rolls back. Before
        the rollback, so that no other connection's transaction can begin and use them in between."""
        self._manifest_ids.clear()
        self._tenant_ids.clear()
        self._fts_tables.clear()

    def _write_now(self, fn: Callable[..., T], *args: Any) -> T | None:
        """:meth:`_write` on the event loop's own writer connection, without a thread: for one small write
        whose thread hop costs more than the write (a trace this server made: 0.5-1 ms against 0.1-0.3 ms).

        None when it cannot be done at once, with nothing written; the caller then writes through
        :meth:`_write`, which also reports any failure. Never waits: another writer holding the database is
        an immediate SQLITE_BUSY, and this connection never checkpoints the WAL (the thread writer does)."""
        db = self._loop_writer
        if db is None or self._lost is not None:
            return None
        if self._checkpoint_task is not None and not self._checkpoint_task.done():
            # Writes queue behind the checkpoint in the thread writer: one that added frames meanwhile would
            # keep the WAL from starting over, and it would grow on.
            return None
        try:
            self._check_file()
            db.execute("BEGIN IMMEDIATE")
        except (AgntError, sqlite3.Error):
            return None
        try:
            result = fn(db, *args)
            db.execute("COMMIT")
        except BaseException as exc:
            self._forget_uncommitted()
            if db.in_transaction:
                try:
                    db.execute("ROLLBACK")
                except sqlite3.Error:
                    log_failure(logger, "rollback failed", level=logging.WARNING)
            if isinstance(exc, Exception):
                return None
            raise
        self._disk_full_at = None
        self._check_file()  # committed into a deleted file: lost as soon as we close, so not acknowledged
        self._count_loop_write()
        return result

    def _count_loop_write(self) -> None:
        """Have the thread writer checkpoint the WAL every ``LOOP_WRITES_PER_CHECKPOINT`` writes on the loop;
        writes queue behind it meanwhile (see ``_write_now``), so that it completes and the WAL starts over."""
        self._loop_writes += 1
        if self._loop_writes >= LOOP_WRITES_PER_CHECKPOINT:
            self._loop_writes = 0
            self._checkpoint_task = asyncio.get_running_loop().create_task(self._checkpoint())

    async def _checkpoint(self) -> None:
        try:
            await self._writer.run(lambda db: db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall())
        except Exception:  # asked again after as many writes on the loop
            log_failure(logger, "checkpointing the WAL failed", level=logging.WARNING)

    def _read_now(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]] | None:
        """The rows of a point read on the event loop's own connection, without a thread: a thread hop costs
        more than such a read (0.2-0.7 ms against ~20 µs). None when it cannot answer at once; the caller then
        reads through a thread as usual. It cannot hold up the loop: the database busy is an immediate
        SQLITE_BUSY (no busy wait), and a statement past a few thousand steps is interrupted (a point read
        takes a few hundred). For reads of a row or two by key only, never for anything a caller sizes."""
        db = self._loop_reader
        if db is None:
            return None
        try:
            return db.execute(sql, params).fetchall()  # to the end: no read transaction is left open
        except sqlite3.Error:
            return None

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

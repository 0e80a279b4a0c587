"""Plumbing of the PostgreSQL store: the connection pool, transactions, the read budget, tenants, contents.

Every call runs as one transaction on a pooled connection (psycopg 3, async). Writes that can collide
with another server process (the same client trace id, a roll-up row, a new tenant) are retried whole
on a unique violation, a deadlock or a serialization failure: each attempt re-reads what it depends on.
Reads set ``statement_timeout`` for their own transaction only (``set_config(..., true)``): a read past
the budget is cancelled by the server and raises the same error as the SQLite store's budget.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Self, TypeVar

from ..dburls import describe_url, is_postgres_url
from ..errors import InvalidArgument, StoreUnavailable
from ..ids import now_ms
from ..models import PromptContent, canonical_json
from . import pg_migrations
from .connections import ReadBudgetExceeded
from .cursors import CursorKeys

if TYPE_CHECKING:
    from psycopg import AsyncConnection
    from psycopg_pool import AsyncConnectionPool

__all__ = ["PostgresBase", "describe_url", "is_postgres_url"]

logger = logging.getLogger(__name__)
T = TypeVar("T")

_RETRIES = 6
_UNREACHABLE = (
    "the PostgreSQL database does not answer: nothing of this call was stored or read; check that the server "
    "runs and that --db (AGNT_TRACES_DB) names it"
)


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise InvalidArgument(f"{name}={raw!r} is not a number") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class PostgresBase:
    """A pool of connections to one PostgreSQL database, shared with any number of other server processes."""

    def __init__(self, url: str, pool: AsyncConnectionPool[Any], cursor_key: bytes, budget_ms: float) -> None:
        self.url = url
        self.path = describe_url(url)
        self._pool = pool
        self._cursors = CursorKeys(cursor_key)
        self._budget_ms = budget_ms
        self._tenant_ids: dict[str, int] = {}
        self._manifest_ids: dict[bytes, int] = {}

    @classmethod
    async def open(cls, url: str, *, query_budget_ms: float | None = None, pool_size: int | None = None) -> Self:
        """Connect, apply pending migrations (under an advisory lock) and open the pool.

        ``query_budget_ms`` (default ``AGNT_TRACES_QUERY_BUDGET_MS``, else 2000) bounds every read;
        ``pool_size`` (default ``AGNT_TRACES_PG_POOL``, else 8) is the most connections this process opens.

        Raises:
            InvalidArgument: a setting is out of range, or the database cannot be reached or migrated
                (the message names the database without its password, and the reason).
        """
        import psycopg
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool

        budget = query_budget_ms if query_budget_ms is not None else _env_number("AGNT_TRACES_QUERY_BUDGET_MS", 2000)
        size = pool_size if pool_size is not None else int(_env_number("AGNT_TRACES_PG_POOL", 8))
        if not 1 <= budget <= 3_600_000:
            raise InvalidArgument(f"AGNT_TRACES_QUERY_BUDGET_MS={budget:g} is out of range: use 1 to 3600000 (ms)")
        if not 1 <= size <= 256:
            raise InvalidArgument(f"AGNT_TRACES_PG_POOL={size} is out of range: use 1 to 256")
        shown = describe_url(url)
        try:
            conn = await psycopg.AsyncConnection.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise InvalidArgument(
                f"database {shown}: could not connect ({_first_line(exc)}); pass --db (or AGNT_TRACES_DB) the URL "
                "of a PostgreSQL database this server may use",
                {"field": "db"},
            ) from None
        try:
            await pg_migrations.migrate(conn)
            cursor_key = await pg_migrations.secret(conn, "cursor")
        except psycopg.Error as exc:
            raise InvalidArgument(
                f"database {shown}: could not be prepared ({_first_line(exc)}); the user needs the right to create "
                "tables and the btree_gin extension in it",
                {"field": "db"},
            ) from None
        finally:
            await conn.close()
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            url,
            min_size=min(2, size),
            max_size=size,
            kwargs={"autocommit": True, "row_factory": dict_row},
            open=False,
            name="agnt-traces",
        )
        await pool.open(wait=True, timeout=30)
        return cls(url, pool, cursor_key, budget)

    async def close(self) -> None:
        await self._pool.close()

    async def health(self) -> str | None:
        """None when the database answers; else the reason, for ``/healthz``."""
        try:
            await self._read(lambda conn: conn.execute("SELECT 1"))
        except StoreUnavailable as exc:
            return exc.message
        return None

    # -- transactions -------------------------------------------------------------------------------

    async def _write(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``await fn(conn, *args)`` in one transaction, retried whole when it collided with another writer.

        Raises:
            StoreUnavailable: the database does not answer (HTTP 503).
        """
        import psycopg
        from psycopg import errors

        # A foreign key that names a tenant or manifest another transaction of this process cached but rolled back.
        retryable = (
            errors.UniqueViolation,
            errors.DeadlockDetected,
            errors.SerializationFailure,
            errors.ForeignKeyViolation,
        )
        for attempt in range(_RETRIES):
            try:
                async with self._pool.connection() as conn, conn.transaction():
                    return await fn(conn, *args)
            except retryable:
                self._forget()
                if attempt == _RETRIES - 1:
                    raise
                logger.debug("write collided with another writer; retrying (attempt %d)", attempt + 2)
            except psycopg.OperationalError as exc:
                self._forget()
                logger.error("database %s: %s", self.path, _first_line(exc))
                raise StoreUnavailable(_UNREACHABLE) from None
            except BaseException:
                self._forget()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _forget(self) -> None:
        """Ids cached in a rolled-back transaction may name rows that do not exist."""
        self._tenant_ids.clear()
        self._manifest_ids.clear()

    async def _read(self, fn: Callable[..., Awaitable[T]], *args: Any, budget: bool = True) -> T:
        """``await fn(conn, *args)`` in one read transaction, cancelled past the query time budget.

        Raises:
            ReadBudgetExceeded: the read ran past the budget.
            StoreUnavailable: the database does not answer.
        """
        import psycopg
        from psycopg import errors

        try:
            async with self._pool.connection() as conn, conn.transaction():
                if budget:
                    await conn.execute(
                        "SELECT set_config('statement_timeout', %s, true)", (f"{max(1, int(self._budget_ms))}ms",)
                    )
                return await fn(conn, *args)
        except errors.QueryCanceled:
            raise ReadBudgetExceeded(
                f"the query took longer than the {self._budget_ms:g} ms budget and was stopped: narrow it with "
                "filters (since, promptName, status …) or ask for fewer rows",
                {"budgetMs": self._budget_ms},
            ) from None
        except psycopg.OperationalError as exc:
            logger.error("database %s: %s", self.path, _first_line(exc))
            raise StoreUnavailable(_UNREACHABLE) from None

    async def _fetchall(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        async def run(conn: AsyncConnection[Any]) -> list[dict[str, Any]]:
            cur = await conn.execute(sql, params)
            return list(await cur.fetchall())

        return await self._read(run)

    async def _fetchone(self, sql: str, params: Any = ()) -> dict[str, Any] | None:
        rows = await self._fetchall(sql, params)
        return rows[0] if rows else None

    # -- tenants ------------------------------------------------------------------------------------

    async def _tenant_id_tx(self, conn: AsyncConnection[Any], tenant: str) -> int:
        """The tenant's id inside a write transaction, creating the tenant on its first write."""
        tid = self._tenant_ids.get(tenant)
        if tid is None:
            cur = await conn.execute(
                "INSERT INTO tenants(name, created_at) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING RETURNING id",
                (tenant, now_ms()),
            )
            row = await cur.fetchone()
            if row is None:  # it existed (or another server made it a moment ago)
                cur = await conn.execute("SELECT id FROM tenants WHERE name = %s", (tenant,))
                row = await cur.fetchone()
            assert row is not None
            tid = int(row["id"])
            self._tenant_ids[tenant] = tid
        return tid

    async def _tenant_id(self, tenant: str) -> int | None:
        """The tenant's id for reads; None when the tenant has no data yet."""
        tid = self._tenant_ids.get(tenant)
        if tid is None:
            row = await self._fetchone("SELECT id FROM tenants WHERE name = %s", (tenant,))
            if row is None:
                return None
            tid = int(row["id"])
            self._tenant_ids[tenant] = tid
        return tid

    # -- content-addressed prompt contents ----------------------------------------------------------

    async def put_content(self, tenant: str, content: PromptContent) -> str:
        return await self._write(self._put_content_tx, tenant, content)

    async def _put_content_tx(self, conn: AsyncConnection[Any], tenant: str, content: PromptContent) -> str:
        tid = await self._tenant_id_tx(conn, tenant)
        etag = content.etag
        await conn.execute(
            "INSERT INTO contents(tenant_id, etag, content, created_at) VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (tid, etag, canonical_json(content.canonical()), now_ms()),
        )
        return etag

    async def get_content(self, tenant: str, etag: str) -> PromptContent | None:
        tid = await self._tenant_id(tenant)
        if tid is None:
            return None
        row = await self._fetchone("SELECT content FROM contents WHERE tenant_id = %s AND etag = %s", (tid, etag))
        return PromptContent.model_validate_json(row["content"]) if row else None

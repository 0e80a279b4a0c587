"""Storage: the ``Store`` protocol, its SQLite implementation and its PostgreSQL implementation.

Importing the package loads neither store (nor the records they write): a command that only checks its
``--db`` (``store.dbfile``) or names it (``describe_url``) stays light; ``open_store`` loads the one it opens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..dburls import describe_url, is_postgres_url

if TYPE_CHECKING:
    from pathlib import Path

    from .base import Store
    from .sqlite import SqliteStore

__all__ = ["SqliteStore", "Store", "describe_url", "is_postgres_url", "open_store"]


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def __getattr__(name: str) -> Any:
    if name == "Store":
        from .base import Store

        return Store
    if name == "SqliteStore":
        from .sqlite import SqliteStore

        return SqliteStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


async def open_store(db: str | Path) -> Store:
    """The store ``db`` names: a ``postgresql://`` (or ``postgres://``) URL opens the PostgreSQL store,
    anything else is the path of a SQLite file.

    Raises:
        InvalidArgument: the database cannot be opened (the message names it, without a password).
    """
    if isinstance(db, str) and is_postgres_url(db):
        from .postgres import PostgresStore

        return await PostgresStore.open(db)
    from .sqlite import SqliteStore

    return await SqliteStore.open(db)

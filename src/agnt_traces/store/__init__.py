"""Storage: the ``Store`` protocol, its SQLite implementation and its PostgreSQL implementation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Store
from .postgres_base import describe_url, is_postgres_url
from .sqlite import SqliteStore

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["SqliteStore", "Store", "describe_url", "is_postgres_url", "open_store"]


async def open_store(db: str | Path) -> Store:
    """The store ``db`` names: a ``postgresql://`` (or ``postgres://``) URL opens the PostgreSQL store,
    anything else is the path of a SQLite file.

    Raises:
        InvalidArgument: the database cannot be opened (the message names it, without a password).
    """
    if isinstance(db, str) and is_postgres_url(db):
        from .postgres import PostgresStore

        return await PostgresStore.open(db)
    return await SqliteStore.open(db)

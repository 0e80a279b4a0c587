"""Storage: the ``Store`` protocol and its SQLite implementation."""

from .base import StatsQuery, Store, TraceQuery
from .sqlite import SqliteStore, open_store

__all__ = ["SqliteStore", "StatsQuery", "Store", "TraceQuery", "open_store"]

"""What a ``--db`` value names: a PostgreSQL URL or a SQLite file (kept apart from the stores, so that a
command can check and show it without loading them)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["describe_url", "is_postgres_url"]


def is_postgres_url(db: str) -> bool:
    """``db`` names a PostgreSQL database (``postgresql://…`` or ``postgres://…``), not a SQLite file."""
    return db.startswith(("postgresql://", "postgres://"))


def describe_url(db: str) -> str:
    """``db`` fit for a log line or a message: a PostgreSQL URL loses its password and its query string."""
    if not is_postgres_url(db):
        return db
    parts = urlsplit(db)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))

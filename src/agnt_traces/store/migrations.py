"""Numbered schema migrations, applied in order on every open.

Each migration runs in one transaction together with the row that records it: a failure leaves it
pending and the database as it was. Add new steps at the end; never edit an applied one.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["FTS_PROBE", "MIGRATIONS", "applied", "create_fts_sql", "fts_table", "migrate", "pending", "secret"]

Migration = tuple[int, str, Callable[[sqlite3.Connection], None]]


def m001_initial(db: sqlite3.Connection) -> None:
    db.executescript(
        """
        CREATE TABLE tenants (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            created_at INTEGER NOT NULL
        ) STRICT;

        -- Content-addressed manifests: identical manifests are stored once.
        CREATE TABLE manifests (
            id INTEGER PRIMARY KEY,
            digest BLOB NOT NULL UNIQUE,
            data BLOB NOT NULL
        ) STRICT;

        -- seq = created_at in ms << 12 | slot: rowid order is creation order, and created_at is derived
        -- from it, so "newest first" and time windows are rowid ranges and need no index of their own.
        CREATE TABLE traces (
            seq INTEGER PRIMARY KEY,
            tenant_id INTEGER NOT NULL REFERENCES tenants(id),
            id TEXT NOT NULL,
            prompt_name TEXT,
            prompt_version INTEGER,
            manifest_id INTEGER NOT NULL REFERENCES manifests(id),
            model_provider TEXT NOT NULL,
            model_name TEXT NOT NULL,
            status INTEGER NOT NULL,
            input_tokens INTEGER NOT NULL,
            output_tokens INTEGER NOT NULL,
            total_tokens INTEGER NOT NULL,
            cost REAL,
            duration REAL NOT NULL,
            source TEXT NOT NULL,
            session_id TEXT,
            parent_trace_id TEXT,
            tags TEXT,
            body BLOB NOT NULL,
            digest BLOB NOT NULL
        ) STRICT;

        -- Every index ends with the rowid (seq), so each also serves "newest first" within its filter.
        CREATE UNIQUE INDEX ix_traces_id ON traces(tenant_id, id);
        CREATE INDEX ix_traces_tenant ON traces(tenant_id);
        CREATE INDEX ix_traces_prompt ON traces(tenant_id, prompt_name, prompt_version);
        CREATE INDEX ix_traces_prompt_cost ON traces(tenant_id, prompt_name, status, ifnull(cost, -1.0));
        CREATE INDEX ix_traces_cost ON traces(tenant_id, ifnull(cost, -1.0));
        CREATE INDEX ix_traces_tokens ON traces(tenant_id, total_tokens);
        CREATE INDEX ix_traces_duration ON traces(tenant_id, duration);
        CREATE INDEX ix_traces_model ON traces(tenant_id, model_name);
        CREATE INDEX ix_traces_provider ON traces(tenant_id, model_provider);
        CREATE INDEX ix_traces_errors ON traces(tenant_id) WHERE status = 1;
        CREATE INDEX ix_traces_source ON traces(tenant_id, source) WHERE source <> 'ingest';
        CREATE INDEX ix_traces_session ON traces(session_id) WHERE session_id IS NOT NULL;

        CREATE TABLE trace_tags (
            tenant_id INTEGER NOT NULL,
            tag TEXT NOT NULL,
            seq INTEGER NOT NULL REFERENCES traces(seq),
            PRIMARY KEY (tenant_id, tag, seq)
        ) STRICT, WITHOUT ROWID;

        -- Full text over messages, output and variable values; rowid = traces.seq.
        CREATE VIRTUAL TABLE traces_fts USING fts5(
            body, content='', columnsize=0, tokenize='unicode61 remove_diacritics 2'
        );
        """
    )


def m002_prompts(db: sqlite3.Connection) -> None:
    db.executescript(
        """
        -- Every prompt content that was ever a draft, a version or compiled for a call, by etag.
        CREATE TABLE contents (
            tenant_id INTEGER NOT NULL REFERENCES tenants(id),
            etag TEXT NOT NULL,
            content TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            PRIMARY KEY (tenant_id, etag)
        ) STRICT, WITHOUT ROWID;

        CREATE TABLE prompts (
            id INTEGER PRIMARY KEY,
            tenant_id INTEGER NOT NULL REFERENCES tenants(id),
            name TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            draft_etag TEXT NOT NULL,
            draft_revision INTEGER NOT NULL,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            UNIQUE (tenant_id, name)
        ) STRICT;

        CREATE TABLE prompt_versions (
            prompt_id INTEGER NOT NULL REFERENCES prompts(id),
            version INTEGER NOT NULL,
            etag TEXT NOT NULL,
            note TEXT NOT NULL DEFAULT '',
            created_at INTEGER NOT NULL,
            PRIMARY KEY (prompt_id, version),
            UNIQUE (prompt_id, etag)
        ) STRICT, WITHOUT ROWID;

        CREATE TABLE prompt_labels (
            prompt_id INTEGER NOT NULL REFERENCES prompts(id),
            label TEXT NOT NULL,
            version INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            PRIMARY KEY (prompt_id, label)
        ) STRICT, WITHOUT ROWID;

        -- Every label move, oldest first: publishes and rollbacks.
        CREATE TABLE prompt_label_history (
            id INTEGER PRIMARY KEY,
            prompt_id INTEGER NOT NULL REFERENCES prompts(id),
            label TEXT NOT NULL,
            version INTEGER NOT NULL,
            previous_version INTEGER,
            note TEXT NOT NULL DEFAULT '',
            created_at INTEGER NOT NULL
        ) STRICT;
        """
    )


def m003_sessions_and_tokens(db: sqlite3.Connection) -> None:
    db.executescript(
        """
        CREATE TABLE sessions (
            tenant_id INTEGER NOT NULL REFERENCES tenants(id),
            id TEXT NOT NULL,
            trace_id TEXT NOT NULL,
            data TEXT NOT NULL,
            revision INTEGER NOT NULL,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            PRIMARY KEY (tenant_id, id)
        ) STRICT, WITHOUT ROWID;
        CREATE INDEX ix_sessions_updated ON sessions(tenant_id, updated_at);

        -- A session's runs are its traces (traces.session_id): recorded atomically with the call.

        CREATE TABLE api_tokens (
            id TEXT PRIMARY KEY,
            tenant_id INTEGER NOT NULL REFERENCES tenants(id),
            name TEXT NOT NULL,
            token_hash BLOB NOT NULL UNIQUE,
            created_at INTEGER NOT NULL,
            revoked_at INTEGER
        ) STRICT;
        """
    )


def m004_trace_rollups(db: sqlite3.Connection) -> None:
    db.execute(
        """
        CREATE TABLE trace_rollups (
            tenant_id INTEGER NOT NULL,
            hour INTEGER NOT NULL,
            prompt_name TEXT NOT NULL,
            prompt_version INTEGER NOT NULL,
            model_provider TEXT NOT NULL,
            model_name TEXT NOT NULL,
            status INTEGER NOT NULL,
            count INTEGER NOT NULL,
            errors INTEGER NOT NULL,
            input_tokens INTEGER NOT NULL,
            output_tokens INTEGER NOT NULL,
            total_tokens INTEGER NOT NULL,
            cost REAL NOT NULL,
            priced INTEGER NOT NULL,
            hist TEXT NOT NULL,
            PRIMARY KEY (tenant_id, hour, prompt_name, prompt_version, model_provider, model_name, status)
        ) STRICT, WITHOUT ROWID
        """
    )
    # Traces written before this migration: roll them up now, a chunk at a time.
    from .rollups import Agg, RollupKey, add_trace, merge_into

    for rows in _stored_traces(db):
        by_tenant: dict[int, dict[RollupKey, Agg]] = {}
        for row in rows:
            add_trace(by_tenant.setdefault(row["tenant_id"], {}), row["seq"] >> 12, row)
        for tenant_id, acc in by_tenant.items():
            merge_into(db, tenant_id, acc)


# Full text: one FTS5 table per tenant (rowid = traces.seq), so a search reads the postings of its own
# tenant's traces only and costs the same however much other tenants store. FTS_PROBE stays empty: it
# checks a query's syntax for tenants that have no table yet.
FTS_PROBE = "fts_probe"
_FTS_OPTIONS = "body, content='', columnsize=0, tokenize='unicode61 remove_diacritics 2'"


def fts_table(tenant_id: int) -> str:
    """The full-text table of one tenant (an integer id: safe to put in SQL text)."""
    return f"fts_tenant_{int(tenant_id)}"


def create_fts_sql(table: str) -> str:
    return f"CREATE VIRTUAL TABLE IF NOT EXISTS {table} USING fts5({_FTS_OPTIONS})"


def m005_tenant_fulltext_and_secrets(db: sqlite3.Connection) -> None:
    """Move the shared full-text index into one table per tenant; add the per-database secrets."""
    db.execute(
        "CREATE TABLE store_secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL, created_at TEXT NOT NULL) "
        "STRICT, WITHOUT ROWID"
    )
    db.execute(
        "INSERT INTO store_secrets(name, value, created_at) VALUES ('cursor', ?, datetime('now'))", (os.urandom(32),)
    )
    db.execute(create_fts_sql(FTS_PROBE))
    # The old index is contentless: rebuild each tenant's from the stored bodies, a chunk at a time.
    from .codec import body_search_text

    created: set[int] = set()
    last = -1
    while True:
        rows = db.execute(
            "SELECT seq, tenant_id, body FROM traces WHERE seq > ? ORDER BY seq LIMIT 20000", (last,)
        ).fetchall()
        if not rows:
            break
        by_tenant: dict[int, list[tuple[int, str]]] = {}
        for seq, tenant_id, body in rows:
            by_tenant.setdefault(tenant_id, []).append((seq, body_search_text(body)))
        for tenant_id, docs in by_tenant.items():
            table = fts_table(tenant_id)
            if tenant_id not in created:
                db.execute(create_fts_sql(table))
                created.add(tenant_id)
            db.executemany(f"INSERT INTO {table}(rowid, body) VALUES (?, ?)", docs)
        last = rows[-1][0]
    db.execute("DROP TABLE traces_fts")


def m006_golden_replays(db: sqlite3.Connection) -> None:
    db.executescript(
        """
        -- A prompt's golden cases: a pinned trace's exact compile context and its output as the reference.
        CREATE TABLE golden_cases (
            tenant_id INTEGER NOT NULL REFERENCES tenants(id),
            id TEXT NOT NULL,
            prompt_name TEXT NOT NULL,
            trace_id TEXT NOT NULL,
            data TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            PRIMARY KEY (tenant_id, id),
            UNIQUE (tenant_id, prompt_name, trace_id)
        ) STRICT, WITHOUT ROWID;
        CREATE INDEX ix_golden_prompt ON golden_cases(tenant_id, prompt_name);

        -- A prompt's gate policy: publish needs a passing replay of the draft.
        CREATE TABLE prompt_gates (
            tenant_id INTEGER NOT NULL REFERENCES tenants(id),
            prompt_name TEXT NOT NULL,
            policy TEXT NOT NULL,
            updated_at INTEGER NOT NULL,
            PRIMARY KEY (tenant_id, prompt_name)
        ) STRICT, WITHOUT ROWID;

        -- Replay runs: state, progress and the report (one JSON document), by tenant.
        CREATE TABLE replays (
            tenant_id INTEGER NOT NULL REFERENCES tenants(id),
            id TEXT NOT NULL,
            prompt_name TEXT NOT NULL,
            etag TEXT NOT NULL,
            status TEXT NOT NULL,
            owner TEXT NOT NULL,
            data TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            PRIMARY KEY (tenant_id, id)
        ) STRICT, WITHOUT ROWID;
        CREATE INDEX ix_replays_prompt ON replays(tenant_id, prompt_name, etag);
        CREATE INDEX ix_replays_running ON replays(status) WHERE status = 'running';

        -- Recorded answers of replay and playground calls by the hash of the canonical request.
        CREATE TABLE call_cache (
            tenant_id INTEGER NOT NULL REFERENCES tenants(id),
            request_hash BLOB NOT NULL,
            trace_id TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            PRIMARY KEY (tenant_id, request_hash)
        ) STRICT, WITHOUT ROWID;

        -- What let a version be published through a gate: the passing replay, or an override reason.
        CREATE TABLE version_gates (
            tenant_id INTEGER NOT NULL REFERENCES tenants(id),
            prompt_name TEXT NOT NULL,
            version INTEGER NOT NULL,
            data TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            PRIMARY KEY (tenant_id, prompt_name, version, created_at)
        ) STRICT, WITHOUT ROWID;
        """
    )


def m007_stats_rollups(db: sqlite3.Connection) -> None:
    """Roll-ups at four grains and six projections (store.stats_rollups) replace the hourly ones."""
    db.execute(
        """
        CREATE TABLE trace_stats_rollups (
            tenant_id INTEGER NOT NULL,
            dims INTEGER NOT NULL,
            grain INTEGER NOT NULL,
            period INTEGER NOT NULL,
            prompt_name TEXT NOT NULL,
            prompt_version INTEGER NOT NULL,
            model_provider TEXT NOT NULL,
            model_name TEXT NOT NULL,
            status INTEGER NOT NULL,
            count INTEGER NOT NULL,
            errors INTEGER NOT NULL,
            input_tokens INTEGER NOT NULL,
            output_tokens INTEGER NOT NULL,
            total_tokens INTEGER NOT NULL,
            cost REAL NOT NULL,
            priced INTEGER NOT NULL,
            hist BLOB NOT NULL,
            PRIMARY KEY (tenant_id, dims, grain, period, prompt_name, prompt_version, model_provider, model_name,
                status)
        ) STRICT, WITHOUT ROWID
        """
    )
    # Traces written before this migration: roll them up now, a chunk at a time.
    from .stats_rollups import RollupBatch, write_sqlite

    for rows in _stored_traces(db):
        by_tenant: dict[int, RollupBatch] = {}
        for row in rows:
            by_tenant.setdefault(row["tenant_id"], RollupBatch()).add(row["seq"] >> 12, row)
        for tenant_id, batch in by_tenant.items():
            write_sqlite(db, tenant_id, batch)
    db.execute("DROP TABLE trace_rollups")


def m008_stats_pending(db: sqlite3.Connection) -> None:
    """Traces written but not yet added to the roll-ups (store.stats_rollups: roll-ups lag the writes)."""
    db.execute(
        """
        CREATE TABLE trace_stats_pending (
            tenant_id INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            PRIMARY KEY (tenant_id, seq)
        ) STRICT, WITHOUT ROWID
        """
    )


def _stored_traces(db: sqlite3.Connection, chunk: int = 50_000) -> Iterator[list[dict[str, Any]]]:
    """The stored traces' roll-up fields, in seq order, ``chunk`` rows at a time (for roll-up migrations)."""
    last = -1
    while True:
        cur = db.execute(
            "SELECT seq, tenant_id, prompt_name, prompt_version, model_provider, model_name, status, input_tokens, "
            "output_tokens, total_tokens, cost, duration FROM traces WHERE seq > ? ORDER BY seq LIMIT ?",
            (last, chunk),
        )
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        if not rows:
            return
        yield rows
        last = rows[-1]["seq"]


MIGRATIONS: list[Migration] = [
    (1, "initial", m001_initial),
    (2, "prompts", m002_prompts),
    (3, "sessions_and_tokens", m003_sessions_and_tokens),
    (4, "trace_rollups", m004_trace_rollups),
    (5, "tenant_fulltext_and_secrets", m005_tenant_fulltext_and_secrets),
    (6, "golden_replays", m006_golden_replays),
    (7, "stats_rollups", m007_stats_rollups),
    (8, "stats_pending", m008_stats_pending),
]


def _ensure_table(db: sqlite3.Connection) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " number INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL) STRICT"
    )


def applied(db: sqlite3.Connection) -> list[int]:
    _ensure_table(db)
    return [row[0] for row in db.execute("SELECT number FROM schema_migrations ORDER BY number")]


def pending(db: sqlite3.Connection) -> list[Migration]:
    done = set(applied(db))
    return [m for m in MIGRATIONS if m[0] not in done]


def migrate(db: sqlite3.Connection) -> list[int]:
    """Apply every pending migration, each in its own transaction with its record. Returns their numbers.

    ``db`` must be in autocommit mode (``isolation_level=None``).
    """
    numbers = [m[0] for m in MIGRATIONS]
    if numbers != sorted(set(numbers)):
        raise RuntimeError("migration numbers must be unique and increasing")
    ran = []
    for number, name, step in pending(db):
        db.execute("BEGIN IMMEDIATE")
        try:
            # executescript would commit; run statements one by one inside our transaction instead.
            _run_in_transaction(db, step)
            db.execute(
                "INSERT INTO schema_migrations(number, name, applied_at) VALUES (?, ?, datetime('now'))",
                (number, name),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        ran.append(number)
    return ran


def secret(db: sqlite3.Connection, name: str) -> bytes:
    """The database's secret ``name`` (32 random bytes made by a migration, or now if it is missing)."""
    db.execute(
        "INSERT OR IGNORE INTO store_secrets(name, value, created_at) VALUES (?, ?, datetime('now'))",
        (name, os.urandom(32)),
    )
    row = db.execute("SELECT value FROM store_secrets WHERE name = ?", (name,)).fetchone()
    return bytes(row[0])


class _ScriptInTransaction:
    """A connection stand-in whose ``executescript`` runs each statement without committing."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def executescript(self, script: str) -> None:
        for statement in _split_sql(script):
            self._db.execute(statement)

    def execute(self, sql: str, params: tuple[object, ...] = ()) -> sqlite3.Cursor:
        return self._db.execute(sql, params)

    def executemany(self, sql: str, rows: list[tuple[object, ...]]) -> sqlite3.Cursor:
        return self._db.executemany(sql, rows)


def _split_sql(script: str) -> list[str]:
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        if line.strip().startswith("--"):
            continue
        current += line
        if sqlite3.complete_statement(current):
            if current.strip():
                statements.append(current.strip())
            current = ""
    if current.strip():
        raise RuntimeError(f"incomplete SQL statement in migration: {current.strip()[:80]}")
    return statements


def _run_in_transaction(db: sqlite3.Connection, step: Callable[[sqlite3.Connection], None]) -> None:
    step(_ScriptInTransaction(db))  # type: ignore[arg-type]

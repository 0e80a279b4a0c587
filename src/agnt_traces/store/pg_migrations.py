"""Numbered schema migrations of the PostgreSQL store, applied in order on every open.

The numbers follow the SQLite store's (store.migrations): the same number makes the same part of the
schema. Each migration runs in one transaction together with the row that records it, under a
transaction-scoped advisory lock: servers starting at once apply each step exactly once, and the others
wait for it, then see it recorded. Add new steps at the end; never edit an applied one.

Every index starts with ``tenant_id``: a tenant's reads never walk another tenant's rows. Rows are
ordered by ``(created_ms, n)``: the creation time, then ``n`` from one sequence, so ties break the same
way in every server process.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["LOCK_KEY", "MIGRATIONS", "applied", "migrate", "secret"]

#: The advisory lock that serialises migrations (an arbitrary constant: "agnt" in ASCII).
LOCK_KEY = 0x61676E74

M001_INITIAL = """
CREATE TABLE tenants (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

-- Content-addressed manifests: identical manifests are stored once.
CREATE TABLE manifests (
    id BIGSERIAL PRIMARY KEY,
    digest BYTEA NOT NULL UNIQUE,
    data BYTEA NOT NULL
);

CREATE TABLE traces (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    n BIGSERIAL,
    id TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    prompt_name TEXT,
    prompt_version INTEGER,
    manifest_id BIGINT NOT NULL REFERENCES manifests(id),
    model_provider TEXT NOT NULL,
    model_name TEXT NOT NULL,
    status SMALLINT NOT NULL,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    total_tokens BIGINT NOT NULL,
    cost DOUBLE PRECISION,
    duration DOUBLE PRECISION NOT NULL,
    source TEXT NOT NULL,
    session_id TEXT,
    parent_trace_id TEXT,
    tags TEXT,
    body BYTEA NOT NULL,
    digest BYTEA NOT NULL,
    fts TSVECTOR NOT NULL,
    PRIMARY KEY (tenant_id, n)
);

-- Every index ends with (created_ms, n), so each also serves "newest first" within its filter.
CREATE UNIQUE INDEX ix_traces_id ON traces(tenant_id, id);
CREATE INDEX ix_traces_created ON traces(tenant_id, created_ms, n);
CREATE INDEX ix_traces_prompt ON traces(tenant_id, prompt_name, prompt_version, created_ms, n);
CREATE INDEX ix_traces_cost ON traces(tenant_id, (coalesce(cost, -1.0)), created_ms, n);
CREATE INDEX ix_traces_prompt_cost ON traces(tenant_id, prompt_name, status, (coalesce(cost, -1.0)), created_ms, n);
CREATE INDEX ix_traces_tokens ON traces(tenant_id, total_tokens, created_ms, n);
CREATE INDEX ix_traces_duration ON traces(tenant_id, duration, created_ms, n);
CREATE INDEX ix_traces_model ON traces(tenant_id, model_name, created_ms, n);
CREATE INDEX ix_traces_provider ON traces(tenant_id, model_provider, created_ms, n);
CREATE INDEX ix_traces_errors ON traces(tenant_id, created_ms, n) WHERE status = 1;
CREATE INDEX ix_traces_source ON traces(tenant_id, source, created_ms, n) WHERE source <> 'ingest';
CREATE INDEX ix_traces_session ON traces(tenant_id, session_id, created_ms, n) WHERE session_id IS NOT NULL;

CREATE TABLE trace_tags (
    tenant_id BIGINT NOT NULL,
    tag TEXT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, tag, n)
);
"""

M002_PROMPTS = """
CREATE TABLE contents (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    etag TEXT NOT NULL,
    content TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, etag)
);

CREATE TABLE prompts (
    id BIGSERIAL PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    draft_etag TEXT NOT NULL,
    draft_revision INTEGER NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE prompt_versions (
    prompt_id BIGINT NOT NULL REFERENCES prompts(id),
    version INTEGER NOT NULL,
    etag TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    PRIMARY KEY (prompt_id, version),
    UNIQUE (prompt_id, etag)
);

CREATE TABLE prompt_labels (
    prompt_id BIGINT NOT NULL REFERENCES prompts(id),
    label TEXT NOT NULL,
    version INTEGER NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (prompt_id, label)
);

CREATE TABLE prompt_label_history (
    id BIGSERIAL PRIMARY KEY,
    prompt_id BIGINT NOT NULL REFERENCES prompts(id),
    label TEXT NOT NULL,
    version INTEGER NOT NULL,
    previous_version INTEGER,
    note TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
);
CREATE INDEX ix_label_history_prompt ON prompt_label_history(prompt_id, id);
"""

M003_SESSIONS_AND_TOKENS = """
CREATE TABLE sessions (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    id TEXT NOT NULL,
    trace_id TEXT NOT NULL,
    data TEXT NOT NULL,
    revision INTEGER NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX ix_sessions_updated ON sessions(tenant_id, updated_at);
CREATE INDEX ix_sessions_idle ON sessions(updated_at);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    token_hash BYTEA NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX ix_api_tokens_tenant ON api_tokens(tenant_id, created_at);
"""

M004_TRACE_ROLLUPS = """
CREATE TABLE trace_rollups (
    tenant_id BIGINT NOT NULL,
    hour BIGINT NOT NULL,
    prompt_name TEXT NOT NULL,
    prompt_version INTEGER NOT NULL,
    model_provider TEXT NOT NULL,
    model_name TEXT NOT NULL,
    status SMALLINT NOT NULL,
    count BIGINT NOT NULL,
    errors BIGINT NOT NULL,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    total_tokens BIGINT NOT NULL,
    cost DOUBLE PRECISION NOT NULL,
    priced BIGINT NOT NULL,
    hist JSONB NOT NULL,
    PRIMARY KEY (tenant_id, hour, prompt_name, prompt_version, model_provider, model_name, status)
);

-- The sum of two duration histograms ({"bucket": count}), for roll-ups merged by concurrent writers.
CREATE FUNCTION agnt_merge_hist(a JSONB, b JSONB) RETURNS JSONB LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_object_agg(k, s), '{}'::jsonb) FROM (
        SELECT k, sum(v::bigint) AS s FROM (
            SELECT key AS k, value AS v FROM jsonb_each_text(a)
            UNION ALL SELECT key, value FROM jsonb_each_text(b)
        ) x GROUP BY k
    ) y
$$;
"""

M005_FULLTEXT_AND_SECRETS = """
-- Full text: one GIN index led by the tenant (btree_gin), so a search reads its own tenant's postings.
CREATE EXTENSION IF NOT EXISTS btree_gin;
CREATE INDEX ix_traces_fts ON traces USING gin (tenant_id, fts);

CREATE TABLE store_secrets (
    name TEXT PRIMARY KEY,
    value BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
"""

M006_GOLDEN_REPLAYS = """
-- A prompt's golden cases: a pinned trace's exact compile context and its output as the reference.
CREATE TABLE golden_cases (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    id TEXT NOT NULL,
    prompt_name TEXT NOT NULL,
    trace_id TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, prompt_name, trace_id)
);
CREATE INDEX ix_golden_prompt ON golden_cases(tenant_id, prompt_name);

-- A prompt's gate policy: publish needs a passing replay of the draft.
CREATE TABLE prompt_gates (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    prompt_name TEXT NOT NULL,
    policy TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, prompt_name)
);

-- Replay runs: state, progress and the report (one JSON document), by tenant.
CREATE TABLE replays (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    id TEXT NOT NULL,
    prompt_name TEXT NOT NULL,
    etag TEXT NOT NULL,
    status TEXT NOT NULL,
    owner TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX ix_replays_prompt ON replays(tenant_id, prompt_name, etag);
-- Only running replays, across tenants (the restart check reads them all): small, whatever its columns.
CREATE INDEX ix_replays_running ON replays(tenant_id, id) WHERE status = 'running';

-- Recorded answers of replay and playground calls by the hash of the canonical request.
CREATE TABLE call_cache (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    request_hash BYTEA NOT NULL,
    trace_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, request_hash)
);

-- What let a version be published through a gate: the passing replay, or an override reason.
CREATE TABLE version_gates (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    prompt_name TEXT NOT NULL,
    version INTEGER NOT NULL,
    data TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, prompt_name, version, created_at)
);
"""

MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "initial", M001_INITIAL),
    (2, "prompts", M002_PROMPTS),
    (3, "sessions_and_tokens", M003_SESSIONS_AND_TOKENS),
    (4, "trace_rollups", M004_TRACE_ROLLUPS),
    (5, "tenant_fulltext_and_secrets", M005_FULLTEXT_AND_SECRETS),
    (6, "golden_replays", M006_GOLDEN_REPLAYS),
]

_RECORD_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " number INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
)


async def applied(conn: Any) -> list[int]:
    """The numbers of the migrations recorded as applied (``conn`` in autocommit mode)."""
    cur = await conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL AS present")
    row = await cur.fetchone()
    if not _first(row):
        return []
    cur = await conn.execute("SELECT number FROM schema_migrations ORDER BY number")
    return [_first(r) for r in await cur.fetchall()]


def _first(row: Any) -> Any:
    if row is None:
        return None
    return next(iter(row.values())) if isinstance(row, dict) else row[0]


async def migrate(conn: Any) -> list[int]:
    """Apply every pending migration, each in its own transaction with its record and the advisory lock.
    Returns the numbers this call applied. ``conn`` is a psycopg ``AsyncConnection`` in autocommit mode."""
    numbers = [m[0] for m in MIGRATIONS]
    if numbers != sorted(set(numbers)):
        raise RuntimeError("migration numbers must be unique and increasing")
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        await conn.execute(_RECORD_TABLE)
    ran: list[int] = []
    for number, name, sql in MIGRATIONS:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            cur = await conn.execute("SELECT 1 FROM schema_migrations WHERE number = %s", (number,))
            if await cur.fetchone() is not None:
                continue  # applied before, or by another server while this one waited for the lock
            await conn.execute(sql)  # several statements: allowed without parameters
            await conn.execute("INSERT INTO schema_migrations(number, name) VALUES (%s, %s)", (number, name))
        ran.append(number)
    return ran


async def secret(conn: Any, name: str) -> bytes:
    """The database's secret ``name``: 32 random bytes made by the first server that asked, shared by all."""
    await conn.execute(
        "INSERT INTO store_secrets(name, value) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING", (name, os.urandom(32))
    )
    cur = await conn.execute("SELECT value FROM store_secrets WHERE name = %s", (name,))
    return bytes(_first(await cur.fetchone()))

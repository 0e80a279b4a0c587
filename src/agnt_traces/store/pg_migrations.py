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

M007_STATS_ROLLUPS = """
-- Roll-ups at four grains (minutes per period: 1440, 60, 10, 1) and six projections (store.stats_rollups)
-- replace the hourly ones. A histogram is (hist_lo, hist): hist[i] counts bucket hist_lo + i - 1.
CREATE TABLE trace_stats_rollups (
    tenant_id BIGINT NOT NULL,
    dims SMALLINT NOT NULL,
    grain INTEGER NOT NULL,
    period BIGINT NOT NULL,
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
    hist_lo INTEGER NOT NULL,
    hist BIGINT[] NOT NULL,
    PRIMARY KEY (tenant_id, dims, grain, period, prompt_name, prompt_version, model_provider, model_name, status)
);

-- The sum of two histograms (first bucket, counts), for roll-ups merged by concurrent writers.
CREATE FUNCTION agnt_hist_add(a_lo INTEGER, a BIGINT[], b_lo INTEGER, b BIGINT[]) RETURNS BIGINT[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN cardinality(a) = 0 THEN b WHEN cardinality(b) = 0 THEN a ELSE ARRAY(
        SELECT coalesce(a[i - a_lo + 1], 0) + coalesce(b[i - b_lo + 1], 0)
        FROM generate_series(least(a_lo, b_lo), greatest(a_lo + cardinality(a), b_lo + cardinality(b)) - 1) AS i
        ORDER BY i) END
$$;
CREATE FUNCTION agnt_hist_lo(a_lo INTEGER, a BIGINT[], b_lo INTEGER, b BIGINT[]) RETURNS INTEGER
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN cardinality(a) = 0 THEN b_lo WHEN cardinality(b) = 0 THEN a_lo ELSE least(a_lo, b_lo) END
$$;

-- Traces written before this migration. The bucket is store.rollups.bucket: 1 + round(ln(d / 0.1 ms) /
-- ln(1.04)), rounding half to even like Python (rint); an unknown duration (stored < 0) has none.
WITH t AS (
    SELECT tenant_id, created_ms, coalesce(prompt_name, '') AS p, coalesce(prompt_version, 0) AS v,
        model_provider AS mp, model_name AS mn, status AS s, input_tokens, output_tokens, total_tokens, cost,
        CASE WHEN duration < 0 THEN NULL WHEN duration < 1e-4 THEN 0
            ELSE 1 + round(ln(duration / 1e-4::float8) / ln(1.04::float8))::integer END AS b
    FROM traces
), k AS (
    SELECT t.tenant_id, d.dims::smallint AS dims, g.grain,
        floor(t.created_ms / (g.grain * 60000.0))::bigint AS period,
        CASE WHEN d.dims IN (1, 2, 4, 6) THEN t.p ELSE '' END AS prompt_name,
        CASE WHEN d.dims = 2 THEN t.v ELSE 0 END AS prompt_version,
        CASE WHEN d.dims IN (3, 4) THEN t.mp ELSE '' END AS model_provider,
        CASE WHEN d.dims IN (3, 4) THEN t.mn ELSE '' END AS model_name,
        CASE WHEN d.dims IN (5, 6) THEN t.s ELSE 0 END AS status,
        t.s AS err, t.input_tokens, t.output_tokens, t.total_tokens, t.cost, t.b
    FROM t, unnest(ARRAY[1440, 60, 10, 1]) AS g(grain), unnest(ARRAY[1, 2, 3, 4, 5, 6]) AS d(dims)
), sums AS (
    SELECT tenant_id, dims, grain, period, prompt_name, prompt_version, model_provider, model_name, status,
        count(*) AS count, sum(err) AS errors, sum(input_tokens) AS input_tokens,
        sum(output_tokens) AS output_tokens, sum(total_tokens) AS total_tokens, coalesce(sum(cost), 0) AS cost,
        count(cost) AS priced
    FROM k GROUP BY tenant_id, dims, grain, period, prompt_name, prompt_version, model_provider, model_name, status
), hb AS (
    SELECT tenant_id, dims, grain, period, prompt_name, prompt_version, model_provider, model_name, status, b,
        count(*) AS n
    FROM k WHERE b IS NOT NULL
    GROUP BY tenant_id, dims, grain, period, prompt_name, prompt_version, model_provider, model_name, status, b
), hr AS (
    SELECT tenant_id, dims, grain, period, prompt_name, prompt_version, model_provider, model_name, status,
        min(b) AS lo, max(b) AS hi, array_agg(b ORDER BY b) AS bs, array_agg(n ORDER BY b) AS ns
    FROM hb GROUP BY tenant_id, dims, grain, period, prompt_name, prompt_version, model_provider, model_name, status
)
INSERT INTO trace_stats_rollups(tenant_id, dims, grain, period, prompt_name, prompt_version, model_provider,
    model_name, status, count, errors, input_tokens, output_tokens, total_tokens, cost, priced, hist_lo, hist)
SELECT s.*, coalesce(h.lo, 0),
    CASE WHEN h.lo IS NULL THEN '{}'::bigint[] ELSE ARRAY(
        SELECT coalesce(h.ns[array_position(h.bs, i)], 0) FROM generate_series(h.lo, h.hi) AS i ORDER BY i) END
FROM sums s
LEFT JOIN hr h USING (tenant_id, dims, grain, period, prompt_name, prompt_version, model_provider, model_name, status);

DROP TABLE trace_rollups;
DROP FUNCTION agnt_merge_hist(JSONB, JSONB);
"""

MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "initial", M001_INITIAL),
    (2, "prompts", M002_PROMPTS),
    (3, "sessions_and_tokens", M003_SESSIONS_AND_TOKENS),
    (4, "trace_rollups", M004_TRACE_ROLLUPS),
    (5, "tenant_fulltext_and_secrets", M005_FULLTEXT_AND_SECRETS),
    (6, "golden_replays", M006_GOLDEN_REPLAYS),
    (7, "stats_rollups", M007_STATS_ROLLUPS),
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

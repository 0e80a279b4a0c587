"""Copy everything from one store to another (SQLite ⇄ PostgreSQL), resumably and verifiably.

Both stores are opened first (which creates and migrates them); the copy then reads and writes their
tables directly, in a neutral form (tenants by name, traces by id), so it works in both directions:

- tenants, API tokens, prompt contents and sessions: ``INSERT … ON CONFLICT DO NOTHING``;
- each prompt whole (row, versions, labels, label history) in one transaction, skipped if present;
- traces in batches in the source's order, each batch one transaction with its manifests, full-text
  entries, tags and the roll-ups of exactly the traces it inserted; ids already in the target are skipped;
- golden cases, gates, replays, the call cache and version gate records: each table in one transaction,
  ``INSERT … ON CONFLICT DO NOTHING`` (their keys are the same in both stores).

A copy stopped at any point (killed, a lost connection) is continued by running it again: every step is
idempotent and nothing is counted twice. ``verify`` compares per-table counts and digests of the
neutral form of both sides.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..dburls import is_postgres_url
from .codec import body_search_text
from .migrations import create_fts_sql, fts_table
from .pg_fulltext import document_vector
from .stats_rollups import PG_UPSERT, RollupBatch, hist_int, int_hist, lanes_int, postgres_rows, write_sqlite

__all__ = ["TableCheck", "copy_all", "verify"]

_TRACE_COLUMNS = (
    "id, prompt_name, prompt_version, model_provider, model_name, status, input_tokens, output_tokens, "
    "total_tokens, cost, duration, source, session_id, parent_trace_id, tags, body, digest"
)


class Side:
    """One database, read and written with one connection; SQL is written with ``?`` placeholders."""

    def __init__(self, db: str) -> None:
        self.db = db
        self.pg = is_postgres_url(db)
        self.conn: Any
        if self.pg:
            import psycopg

            self.conn = psycopg.connect(db, autocommit=True)
        else:
            self.conn = sqlite3.connect(db, isolation_level=None)
            self.conn.execute("PRAGMA busy_timeout=10000")

    def close(self) -> None:
        self.conn.close()

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.pg else sql

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.conn.execute(self._sql(sql), params).fetchall()]

    def run(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        self.conn.execute(self._sql(sql), params)

    def begin(self) -> None:
        self.conn.execute("BEGIN" if self.pg else "BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.conn.execute("COMMIT")

    def rollback(self) -> None:
        self.conn.execute("ROLLBACK")

    def tenant_id(self, name: str, created_at: int) -> int:
        self.run(
            "INSERT INTO tenants(name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING", (name, created_at)
        )
        return int(self.rows("SELECT id FROM tenants WHERE name = ?", (name,))[0][0])

    def tenants(self) -> dict[int, str]:
        return {int(i): n for i, n in self.rows("SELECT id, name FROM tenants")}

    def trace_pages(self, batch: int) -> Iterator[list[tuple[Any, ...]]]:
        """Every trace, ``batch`` at a time, in creation order: (tenant, created_ms, manifest digest,
        manifest data, *_TRACE_COLUMNS)."""
        order = "t.n" if self.pg else "t.seq"
        created = "t.created_ms" if self.pg else "t.seq >> 12"
        last = -1
        while True:
            page = self.rows(
                f"SELECT {order}, n.name, {created}, m.digest, m.data, "
                + ", ".join(f"t.{c.strip()}" for c in _TRACE_COLUMNS.split(","))
                + f" FROM traces t JOIN tenants n ON n.id = t.tenant_id JOIN manifests m ON m.id = t.manifest_id "
                f"WHERE {order} > ? ORDER BY {order} LIMIT ?",
                (last, batch),
            )
            if not page:
                return
            last = page[-1][0]
            yield [row[1:] for row in page]


@dataclass
class TableCheck:
    table: str
    source_count: int
    target_count: int
    source_digest: str
    target_digest: str

    @property
    def ok(self) -> bool:
        return (self.source_count, self.source_digest) == (self.target_count, self.target_digest)


def _blob(value: Any) -> Any:
    return bytes(value) if isinstance(value, (bytes, bytearray, memoryview)) else value


# -- copying ------------------------------------------------------------------------------------------


def copy_all(
    source: str,
    target: str,
    *,
    batch: int = 2000,
    progress: Callable[[str], None] = lambda _: None,
    batch_delay_s: float = 0.0,
) -> None:
    """Copy every table of ``source`` into ``target`` (both already migrated). Safe to run again."""
    src, dst = Side(source), Side(target)
    try:
        tenants = _copy_tenants(src, dst)
        _copy_simple(src, dst, tenants)
        _copy_prompts(src, dst, tenants, progress)
        copied = 0
        for page in src.trace_pages(batch):
            copied += _copy_trace_batch(dst, page)
            progress(f"traces: {copied} copied")
            if batch_delay_s:
                time.sleep(batch_delay_s)
        _copy_sessions(src, dst, tenants)
        for table, columns in _TENANT_TABLES.items():
            progress(f"{table}: {_copy_tenant_table(src, dst, tenants, table, columns)} in the source")
    finally:
        src.close()
        dst.close()


def _copy_tenants(src: Side, dst: Side) -> dict[int, int]:
    """Source tenant id → target tenant id (tenants are matched by name)."""
    return {
        int(i): dst.tenant_id(name, int(created))
        for i, name, created in src.rows("SELECT id, name, created_at FROM tenants")
    }


def _copy_simple(src: Side, dst: Side, tenants: dict[int, int]) -> None:
    for row in src.rows("SELECT id, tenant_id, name, token_hash, created_at, revoked_at FROM api_tokens"):
        dst.run(
            "INSERT INTO api_tokens(id, tenant_id, name, token_hash, created_at, revoked_at) VALUES (?,?,?,?,?,?) "
            "ON CONFLICT DO NOTHING",
            (row[0], tenants[row[1]], row[2], _blob(row[3]), row[4], row[5]),
        )
    dst.begin()
    for tid, etag, content, created in src.rows("SELECT tenant_id, etag, content, created_at FROM contents"):
        dst.run(
            "INSERT INTO contents(tenant_id, etag, content, created_at) VALUES (?,?,?,?) ON CONFLICT DO NOTHING",
            (tenants[tid], etag, content, created),
        )
    dst.commit()


def _copy_prompts(src: Side, dst: Side, tenants: dict[int, int], progress: Callable[[str], None]) -> None:
    rows = src.rows(
        "SELECT id, tenant_id, name, description, draft_etag, draft_revision, created_at, updated_at FROM prompts "
        "ORDER BY id"
    )
    for pid, tid, name, *rest in rows:
        target_tid = tenants[tid]
        if dst.rows("SELECT 1 FROM prompts WHERE tenant_id = ? AND name = ?", (target_tid, name)):
            continue
        dst.begin()
        try:
            dst.run(
                "INSERT INTO prompts(tenant_id, name, description, draft_etag, draft_revision, created_at, updated_at) "
                "VALUES (?,?,?,?,?,?,?)",
                (target_tid, name, *rest),
            )
            new_pid = dst.rows("SELECT id FROM prompts WHERE tenant_id = ? AND name = ?", (target_tid, name))[0][0]
            for v in src.rows(
                "SELECT version, etag, note, created_at FROM prompt_versions WHERE prompt_id = ?", (pid,)
            ):
                dst.run(
                    "INSERT INTO prompt_versions(prompt_id, version, etag, note, created_at) VALUES (?,?,?,?,?)",
                    (new_pid, *v),
                )
            for lb in src.rows("SELECT label, version, updated_at FROM prompt_labels WHERE prompt_id = ?", (pid,)):
                dst.run(
                    "INSERT INTO prompt_labels(prompt_id, label, version, updated_at) VALUES (?,?,?,?)", (new_pid, *lb)
                )
            for h in src.rows(
                "SELECT label, version, previous_version, note, created_at FROM prompt_label_history "
                "WHERE prompt_id = ? ORDER BY id",
                (pid,),
            ):
                dst.run(
                    "INSERT INTO prompt_label_history(prompt_id, label, version, previous_version, note, created_at) "
                    "VALUES (?,?,?,?,?,?)",
                    (new_pid, *h),
                )
            dst.commit()
        except BaseException:
            dst.rollback()
            raise
    progress(f"prompts: {len(rows)} in the source")


def _copy_sessions(src: Side, dst: Side, tenants: dict[int, int]) -> None:
    dst.begin()
    for tid, *rest in src.rows("SELECT tenant_id, id, trace_id, data, revision, created_at, updated_at FROM sessions"):
        dst.run(
            "INSERT INTO sessions(tenant_id, id, trace_id, data, revision, created_at, updated_at) "
            "VALUES (?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
            (tenants[tid], *rest),
        )
    dst.commit()


#: Tables keyed by tenant whose other columns copy as they are (ids, names, JSON text, hashes): table →
#: its columns after ``tenant_id``. Their keys are the same in both stores.
_TENANT_TABLES: dict[str, tuple[str, ...]] = {
    "golden_cases": ("id", "prompt_name", "trace_id", "data", "created_at", "updated_at"),
    "prompt_gates": ("prompt_name", "policy", "updated_at"),
    "replays": ("id", "prompt_name", "etag", "status", "owner", "data", "created_at", "updated_at"),
    "call_cache": ("request_hash", "trace_id", "created_at"),
    "version_gates": ("prompt_name", "version", "data", "created_at"),
}


def _copy_tenant_table(src: Side, dst: Side, tenants: dict[int, int], table: str, columns: tuple[str, ...]) -> int:
    """Copy one of ``_TENANT_TABLES`` in one transaction; rows the target has are kept. Returns the source's count."""
    names = ", ".join(columns)
    rows = src.rows(f"SELECT tenant_id, {names} FROM {table}")
    dst.begin()
    try:
        for tid, *rest in rows:
            dst.run(
                f"INSERT INTO {table}(tenant_id, {names}) VALUES (?{',?' * len(columns)}) ON CONFLICT DO NOTHING",
                (tenants[tid], *(_blob(v) for v in rest)),
            )
        dst.commit()
    except BaseException:
        dst.rollback()
        raise
    return len(rows)


def _copy_trace_batch(dst: Side, page: list[tuple[Any, ...]]) -> int:
    """Insert the traces of ``page`` the target lacks, with their roll-ups, in one transaction."""
    dst.begin()
    try:
        tenant_ids: dict[str, int] = {}
        inserted = 0
        acc: dict[int, RollupBatch] = {}
        for tenant, created_ms, mdigest, mdata, *cols in page:
            tid = tenant_ids.get(tenant)
            if tid is None:
                tid = tenant_ids[tenant] = dst.tenant_id(tenant, 0)
            trace = dict(zip([c.strip() for c in _TRACE_COLUMNS.split(",")], cols, strict=True))
            if dst.rows("SELECT 1 FROM traces WHERE tenant_id = ? AND id = ?", (tid, trace["id"])):
                continue  # copied by an earlier run
            dst.run(
                "INSERT INTO manifests(digest, data) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (_blob(mdigest), _blob(mdata)),
            )
            mid = dst.rows("SELECT id FROM manifests WHERE digest = ?", (_blob(mdigest),))[0][0]
            _insert_trace(dst, tid, int(created_ms), mid, trace)
            acc.setdefault(tid, RollupBatch()).add(int(created_ms), trace)
            inserted += 1
        for tid, aggs in acc.items():
            _merge_rollups(dst, tid, aggs)
        dst.commit()
        return inserted
    except BaseException:
        dst.rollback()
        raise


def _insert_trace(dst: Side, tid: int, created_ms: int, mid: int, trace: dict[str, Any]) -> None:
    body = _blob(trace["body"])
    values = [trace[c.strip()] for c in _TRACE_COLUMNS.split(",")]
    values = [_blob(v) for v in values]
    text = body_search_text(body)
    tags = json.loads(trace["tags"]) if trace["tags"] else []
    if dst.pg:
        (n,) = dst.rows("SELECT nextval(pg_get_serial_sequence('traces', 'n'))")[0]
        dst.run(
            f"INSERT INTO traces(tenant_id, n, created_ms, manifest_id, {_TRACE_COLUMNS}, fts) "
            f"VALUES (?,?,?,?,{','.join('?' * len(values))}, ?::tsvector)",
            (tid, n, created_ms, mid, *values, document_vector(text)),
        )
        key = n
    else:
        from .sqlite import _free_seq

        seq = _free_seq(dst.conn, created_ms, {})  # inserted at once: the next call reads it
        dst.run(
            f"INSERT INTO traces(seq, tenant_id, manifest_id, {_TRACE_COLUMNS}) "
            f"VALUES (?,?,?,{','.join('?' * len(values))})",
            (seq, tid, mid, *values),
        )
        table = fts_table(tid)
        dst.run(create_fts_sql(table))
        dst.run(f"INSERT INTO {table}(rowid, body) VALUES (?, ?)", (seq, text))
        key = seq
    column = "n" if dst.pg else "seq"
    for tag in dict.fromkeys(tags):
        dst.run(
            f"INSERT INTO trace_tags(tenant_id, tag, {column}) VALUES (?,?,?) ON CONFLICT DO NOTHING", (tid, tag, key)
        )


def _merge_rollups(dst: Side, tid: int, batch: RollupBatch) -> None:
    if not dst.pg:
        write_sqlite(dst.conn, tid, batch)
        return
    for row in postgres_rows(tid, batch):
        dst.conn.execute(PG_UPSERT, row)


# -- verifying ----------------------------------------------------------------------------------------


def _neutral(side: Side) -> dict[str, list[str]]:
    """Every table as sorted lines of its store-independent content."""
    tenants = side.tenants()
    created = "t.created_ms" if side.pg else "t.seq >> 12"
    out: dict[str, list[str]] = {"tenants": sorted(tenants.values())}

    def lines(sql: str, fmt: Callable[[tuple[Any, ...]], tuple[Any, ...]] = lambda r: r) -> list[str]:
        return sorted(json.dumps([_plain(v) for v in fmt(r)]) for r in side.rows(sql))

    out["api_tokens"] = lines(
        "SELECT id, tenant_id, name, token_hash, created_at, revoked_at FROM api_tokens",
        lambda r: (r[0], tenants[r[1]], r[2], r[3], r[4], r[5]),
    )
    out["contents"] = lines("SELECT tenant_id, etag, content FROM contents", lambda r: (tenants[r[0]], *r[1:]))
    prompt = (
        "(SELECT n.name || '/' || p.name FROM prompts p JOIN tenants n ON n.id = p.tenant_id WHERE p.id = x.prompt_id)"
    )
    out["prompts"] = lines(
        "SELECT tenant_id, name, description, draft_etag, draft_revision, created_at, updated_at FROM prompts",
        lambda r: (tenants[r[0]], *r[1:]),
    )
    out["prompt_versions"] = lines(f"SELECT {prompt}, version, etag, note, created_at FROM prompt_versions x")
    out["prompt_labels"] = lines(f"SELECT {prompt}, label, version, updated_at FROM prompt_labels x")
    out["prompt_label_history"] = lines(
        f"SELECT {prompt}, label, version, previous_version, note, created_at FROM prompt_label_history x"
    )
    out["traces"] = lines(
        f"SELECT t.tenant_id, t.id, {created}, t.digest, m.digest, t.body, t.tags, t.cost, t.duration "
        "FROM traces t JOIN manifests m ON m.id = t.manifest_id",
        lambda r: (tenants[r[0]], *r[1:]),
    )
    key = "n" if side.pg else "seq"
    out["trace_tags"] = lines(
        f"SELECT g.tenant_id, t.id, g.tag FROM trace_tags g "
        f"JOIN traces t ON t.tenant_id = g.tenant_id AND t.{key} = g.{key}",
        lambda r: (tenants[r[0]], *r[1:]),
    )
    hist = "hist_lo, hist" if side.pg else "hist"
    out["trace_stats_rollups"] = lines(
        "SELECT tenant_id, dims, grain, period, prompt_name, prompt_version, model_provider, model_name, status, "
        f"count, errors, input_tokens, output_tokens, total_tokens, cost, priced, {hist} FROM trace_stats_rollups",
        lambda r: (
            tenants[r[0]],
            *r[1:14],
            round(r[14], 9),
            r[15],
            sorted(int_hist(lanes_int(r[16], r[17]) if side.pg else hist_int(_blob(r[16]))).items()),
        ),
    )
    out["sessions"] = lines(
        "SELECT tenant_id, id, trace_id, data, revision, created_at, updated_at FROM sessions",
        lambda r: (tenants[r[0]], r[1], r[2], json.loads(r[3]), *r[4:]),
    )
    for table, columns in _TENANT_TABLES.items():
        out[table] = lines(f"SELECT tenant_id, {', '.join(columns)} FROM {table}", lambda r: (tenants[r[0]], *r[1:]))
    return out


def _plain(value: Any) -> Any:
    value = _blob(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, float):
        return repr(value)
    return value


def verify(source: str, target: str) -> list[TableCheck]:
    """Per-table counts and SHA-256 digests of both sides' neutral content."""
    src, dst = Side(source), Side(target)
    try:
        a, b = _neutral(src), _neutral(dst)
    finally:
        src.close()
        dst.close()

    def digest(lines: list[str]) -> str:
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]

    return [TableCheck(t, len(a[t]), len(b[t]), digest(a[t]), digest(b[t])) for t in a]

"""The SQLite store: one file in WAL mode, one writer connection and a few reader connections.

Writes run as one function each on the writer connection, inside ``BEGIN IMMEDIATE`` … ``COMMIT``, so a
call is all or nothing. Reads go through a pool of reader connections (a slow read holds one of them,
not all), see only committed data, and are stopped at the query time budget. Each tenant's full text
is indexed in a table of its own, and list cursors are sealed (store.cursors).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from pathlib import Path
from typing import Any, Self, TypeVar

from ..errors import Conflict, InvalidArgument
from ..ingest_records import IngestResult, TraceRecord
from ..logs import log_failure
from ..models import Trace
from ..records import StatsFilter, StatsRow, TraceFilter, TracePage, TraceSummary
from .codec import (
    encode_duration,
    pack_body,
    pack_manifest,
    record_created_ms,
    record_manifest,
    search_text,
    summary_fields,
    summary_of,
    unpack_trace,
)
from .connections import ReadBudgetExceeded
from .fulltext import check_fulltext_query
from .migrations import FTS_PROBE, create_fts_sql, fts_table
from .rollups import STATS_GROUPS, rollup_fields, stats_rows
from .sqlite_golden import GoldenMixin
from .sqlite_prompts import PromptsMixin
from .sqlite_sessions import SessionsMixin
from .stats_rollups import batch_of, dims_for, read_sqlite, roll_up_pending, write_sqlite

__all__ = ["SqliteStore", "open_store"]

logger = logging.getLogger(__name__)
T = TypeVar("T")

_SORT_EXPR = {
    "created_at": "t.seq",
    "cost": "ifnull(t.cost, -1.0)",
    "total_tokens": "t.total_tokens",
    "duration": "t.duration",  # unknown is stored below every real duration: first asc, last desc
}
_ROW_COLUMNS = (
    "t.seq, t.id, t.prompt_name, t.prompt_version, t.model_provider, t.model_name, "
    "t.status, t.total_tokens, t.cost, t.duration, t.tags, t.body"
)
_PARAM_CHUNK = 400
SLOT_BITS = 12  # seq = created_at_ms << SLOT_BITS | slot
SLOT_MASK = (1 << SLOT_BITS) - 1


#: A trace this server made is written on the event loop (``_write_now``) when it is at most this long as JSON.
NOW_BYTES = 32_768


class SqliteStore(PromptsMixin, SessionsMixin, GoldenMixin):
    """``Store`` on one SQLite file."""

    #: Traces written and not yet rolled up that start a roll-up (store.stats_rollups). It runs as
    #: transactions of ``_ROLLUP_CHUNK`` traces, so other writes go in between: a few ms each for an app's
    #: traces, 40-90 ms when every trace has a prompt, model, status and minute of its own.
    rollup_every = 1000
    #: A write of at least this many new traces adds them to the roll-ups itself: its traces share most of
    #: their roll-up rows already, and noting them would only add work.
    rollup_inline_from = 100
    _ROLLUP_CHUNK = 250
    _pending_rollups = 0
    _rollup_task: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, path: str | Path, *, query_budget_ms: float | None = None, readers: int | None = None) -> Self:
        store = await super().open(path, query_budget_ms=query_budget_ms, readers=readers)
        try:
            await store.roll_up()  # what an earlier process left (e.g. killed between roll-ups)
        except BaseException:
            await store.close()
            raise
        return store

    async def close(self) -> None:
        try:
            await self.roll_up()
        except Exception:  # the noted traces stay noted: reads count them, the next open rolls them up
            log_failure(logger, "rolling up the last traces' stats failed on close", level=logging.WARNING)
        await super().close()

    # -- traces -----------------------------------------------------------------------------------

    async def insert_traces(self, tenant: str, records: list[TraceRecord]) -> list[IngestResult]:
        """Store traces in one transaction. A client id seen before with other content is a conflict
        and nothing of the batch is stored; with the same content it is a no-op success."""
        if not records:
            return []
        results = None
        size = records[0].size
        if len(records) == 1 and not records[0].client_id and size is not None and size <= NOW_BYTES:
            results = self._write_now(self._insert_traces_sync, tenant, records)  # a trace this server made
        if results is None:
            results = await self._write(self._insert_traces_sync, tenant, records)
        created = sum(r.created for r in results)
        if created < self.rollup_inline_from:
            self._pending_rollups += created
        if self._pending_rollups >= self.rollup_every and (self._rollup_task is None or self._rollup_task.done()):
            self._rollup_task = asyncio.get_running_loop().create_task(self._roll_up_in_background())
        return results

    async def roll_up(self) -> None:
        """Add every trace not yet in the stats roll-ups to them (store.stats_rollups)."""
        task = self._rollup_task
        if task is not None and not task.done():
            await asyncio.shield(task)
        # Look first (a read on the writer's connection, which also sees a ":memory:" database): with nothing
        # noted, no write transaction is begun.
        if await self._writer.run(_has_pending):
            await self._roll_up_chunks()
        self._pending_rollups = 0

    async def _roll_up_in_background(self) -> None:
        try:
            await self._roll_up_chunks()
        except Exception:  # nothing is lost: reads count noted traces, and the next roll-up retries them
            log_failure(logger, "rolling up traces' stats failed", level=logging.WARNING)

    async def _roll_up_chunks(self) -> None:
        """Roll up noted traces, a transaction per chunk, until none is left."""
        while True:
            done = await self._write(roll_up_pending, self._ROLLUP_CHUNK, SLOT_BITS)
            self._pending_rollups = max(0, self._pending_rollups - done)
            if done < self._ROLLUP_CHUNK:
                return

    def _insert_traces_sync(
        self, db: sqlite3.Connection, tenant: str, records: list[TraceRecord]
    ) -> list[IngestResult]:
        tid = self._tenant_id_sync(db, tenant)
        results: list[IngestResult] = []
        # Duplicate client ids inside the batch and against stored traces.
        first_digest: dict[str, bytes] = {}
        client_ids = [r.trace.id for r in records if r.client_id]
        stored: dict[str, bytes] = {}
        for i in range(0, len(client_ids), _PARAM_CHUNK):
            chunk = client_ids[i : i + _PARAM_CHUNK]
            marks = ",".join("?" * len(chunk))
            for tid_id, digest in db.execute(
                f"SELECT id, digest FROM traces WHERE tenant_id = ? AND id IN ({marks})", (tid, *chunk)
            ):
                stored[tid_id] = digest
        new: list[TraceRecord] = []
        for rec in records:
            tr_id = rec.trace.id
            known = stored.get(tr_id, first_digest.get(tr_id))
            if known is not None:
                if known != rec.digest:
                    raise Conflict(
                        f"trace {tr_id!r} already exists with different content; traces are never "
                        "overwritten: post it under a new id, or omit id to have one generated",
                        {"id": tr_id},
                    )
                results.append(IngestResult(tr_id, created=False))
                continue
            first_digest[tr_id] = rec.digest
            new.append(rec)
            results.append(IngestResult(tr_id, created=True))
        if not new:
            return results

        rows = []
        fts_rows = []
        tag_rows: list[tuple[str, list[str]]] = []
        for rec in new:
            t = rec.trace
            key = record_manifest(rec)
            mdigest = key.digest
            mid = self._manifest_ids.get(mdigest)
            if mid is None:
                row = db.execute(
                    "INSERT INTO manifests(digest, data) VALUES (?, ?) "
                    "ON CONFLICT(digest) DO UPDATE SET digest = excluded.digest RETURNING id",
                    (mdigest, pack_manifest(key.text)),
                ).fetchone()
                mid = int(row[0])
                if len(self._manifest_ids) > 10_000:
                    self._manifest_ids.clear()
                self._manifest_ids[mdigest] = mid
            rows.append(
                (
                    record_created_ms(rec),  # the seq is picked at insert time, below
                    tid,
                    t.id,
                    t.prompt_name,
                    t.prompt_version,
                    mid,
                    t.model.provider,
                    t.model.name,
                    1 if t.status == "error" else 0,
                    t.input_tokens,
                    t.output_tokens,
                    t.total_tokens,
                    t.cost,
                    encode_duration(t.duration),
                    t.source,
                    t.session_id,
                    t.parent_trace_id,
                    json.dumps(t.tags, ensure_ascii=False) if t.tags else None,
                    pack_body(t),
                    rec.digest,
                )
            )
            fts_rows.append(search_text(t))
            if t.tags:
                tag_rows.append((t.id, t.tags))
        seqs: dict[str, int] = {}
        free: dict[int, int] = {}  # millisecond → its next free seq, for those this batch has looked at
        for i, (rec, row) in enumerate(zip(new, rows, strict=True)):
            seq = _free_seq(db, row[0], free)
            if seq >> SLOT_BITS != row[0]:
                # Another tenant (or this one) filled the millisecond: the seq moves on, the trace's own time
                # does not — the body keeps it.
                row = (*row[:18], pack_body(rec.trace, created_ms=row[0]), row[19])
            rows[i] = (seq, *row[1:])
            seqs[row[2]] = seq
        db.executemany(
            "INSERT INTO traces(seq, tenant_id, id, prompt_name, prompt_version, manifest_id, "
            "model_provider, model_name, status, input_tokens, output_tokens, total_tokens, cost, "
            "duration, source, session_id, parent_trace_id, tags, body, digest) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
        fts = fts_table(tid)
        if tid not in self._fts_tables:
            db.execute(create_fts_sql(fts))  # the tenant's first traces: its own full-text table
            self._fts_tables.add(tid)
        db.executemany(
            f"INSERT INTO {fts}(rowid, body) VALUES (?, ?)",
            [(seqs[rec.trace.id], text) for rec, text in zip(new, fts_rows, strict=True)],
        )
        db.executemany(
            "INSERT OR IGNORE INTO trace_tags(tenant_id, tag, seq) VALUES (?, ?, ?)",
            [(tid, tag, seqs[trace_id]) for trace_id, tags in tag_rows for tag in tags],
        )
        if len(new) >= self.rollup_inline_from:
            write_sqlite(db, tid, batch_of((seqs[rec.trace.id] >> SLOT_BITS, rollup_fields(rec.trace)) for rec in new))
        else:  # rolled up later, many traces at once (store.stats_rollups); reads count them until then
            db.executemany(
                "INSERT INTO trace_stats_pending(tenant_id, seq) VALUES (?, ?)", [(tid, seq) for seq in seqs.values()]
            )
        return results

    async def get_trace(self, tenant: str, trace_id: str) -> Trace | None:
        tid = await self._tenant_id(tenant)
        if tid is None:
            return None
        row = await self._fetchone(
            "SELECT t.*, m.data AS manifest FROM traces t JOIN manifests m ON m.id = t.manifest_id "
            "WHERE t.tenant_id = ? AND t.id = ?",
            (tid, trace_id),
        )
        if row is None:
            return None
        return unpack_trace(dict(row), row["manifest"])

    async def list_traces(self, tenant: str, query: TraceFilter) -> TracePage:
        """One page of the tenant's traces, read whole on one reader connection within the budget.

        Raises:
            InvalidArgument: a malformed or too costly full-text query, a cursor not made for this list,
                or a read that ran past the time budget.
        """
        if query.query:
            check_fulltext_query(query.query)
        after_id = self._cursors.open(tenant, query, query.cursor) if query.cursor else None
        try:
            if query.query:
                async with self._fulltext_gate.hold(tenant):
                    rows = await self._read(self._list_sync, tenant, query, after_id)
            else:
                rows = await self._read(self._list_sync, tenant, query, after_id)
        except ReadBudgetExceeded as exc:
            if not query.query:
                raise
            raise InvalidArgument(
                "full-text query too expensive: it ran past the "
                f"{self._readers.budget_ms:g} ms budget and was stopped; use longer words, fewer terms, or "
                "add filters (since, promptName, status …)",
                {"field": "query", "rule": "time_budget", "budgetMs": exc.details.get("budgetMs")},
            ) from None
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        out = [_row_to_summary(r) for r in rows]
        next_cursor = self._cursors.seal(tenant, query, rows[-1]["id"]) if more and rows else None
        return TracePage(rows=out, next_cursor=next_cursor)

    def _list_sync(
        self, db: sqlite3.Connection, tenant: str, query: TraceFilter, after_id: str | None
    ) -> list[sqlite3.Row]:
        tid = self._tenant_id_read_sync(db, tenant)
        # A tenant with no data yet still gets its arguments checked: the query matches nothing.
        tid = -1 if tid is None else tid
        fts = FTS_PROBE
        if query.query:
            problem = _fts_problem(db, query.query)
            if problem:
                raise InvalidArgument(
                    f"query {query.query!r} is not a valid full-text query ({problem}): use plain words, "
                    '"quoted phrases", OR, NOT, or prefix* — or put the whole text in double quotes',
                    {"field": "query"},
                )
            if self._has_fts_table(db, tid):
                fts = fts_table(tid)
        after = None
        if after_id is not None:
            after = _cursor_position(db, tid, query.sort, after_id)
        if query.query and fts == FTS_PROBE:
            return []  # no full-text table: nothing of this tenant was ever indexed
        # Pick the plan by how selective the tags and the text are: one bounded probe each.
        common = frozenset(tag for tag in query.tags if _tag_is_common(db, tid, tag))
        many = query.query is not None and query.sort != "created_at" and _fts_is_common(db, fts, query.query)
        sql, params = build_trace_query(tid, query, common, many, fts_table=fts, after=after)
        return list(db.execute(sql, params).fetchall())

    def _has_fts_table(self, db: sqlite3.Connection, tenant_id: int) -> bool:
        """The tenant's full-text table is committed (tables are never dropped: the answer is cached)."""
        if tenant_id in self._fts_seen:
            return True
        row = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (fts_table(tenant_id),)
        ).fetchone()
        if row is not None:
            self._fts_seen.add(tenant_id)
        return row is not None

    async def trace_stats(self, tenant: str, query: StatsFilter) -> list[StatsRow]:
        """Whole days, hours, ten minutes and minutes of the window from the roll-ups; the sub-minute edges
        from the traces (store.stats_rollups)."""
        tid = await self._tenant_id(tenant)
        if tid is None:
            return []
        prompt = query.prompt_name or None
        dims = dims_for(query.group_by, prompt is not None)

        def run(db: sqlite3.Connection) -> Any:
            return read_sqlite(
                db, tid, STATS_GROUPS[query.group_by], dims, query.since_ms, query.until_ms, prompt, SLOT_BITS
            )

        return stats_rows(query.group_by, await self._read(run))

    async def count_traces(self, tenant: str) -> int:
        tid = await self._tenant_id(tenant)
        if tid is None:
            return 0
        row = await self._fetchone("SELECT count(*) FROM traces WHERE tenant_id = ?", (tid,))
        return int(row[0]) if row else 0

    # -- maintenance --------------------------------------------------------------------------------

    async def integrity_check(self) -> str:
        def run(db: sqlite3.Connection) -> str:
            row = db.execute("PRAGMA integrity_check").fetchone()
            return str(row[0]) if row else "no answer"

        return await self._readers.run(run, unbudgeted=True)  # maintenance: runs to the end


def _has_pending(db: sqlite3.Connection) -> bool:
    return db.execute("SELECT 1 FROM trace_stats_pending LIMIT 1").fetchone() is not None


def _tag_is_common(db: sqlite3.Connection, tenant_id: int, tag: str) -> bool:
    """More than a few thousand traces carry the tag (one bounded index probe)."""
    row = db.execute(
        "SELECT seq FROM trace_tags WHERE tenant_id = ? AND tag = ? LIMIT 1 OFFSET 2000", (tenant_id, tag)
    ).fetchone()
    return row is not None


def _fts_is_common(db: sqlite3.Connection, table: str, text: str) -> bool:
    """More than a few thousand of the tenant's traces match (one bounded full-text scan)."""
    row = db.execute(f"SELECT rowid FROM {table} WHERE {table} MATCH ? LIMIT 1 OFFSET 3000", (text,)).fetchone()
    return row is not None


def _fts_problem(db: sqlite3.Connection, text: str) -> str | None:
    """Why SQLite's full-text parser refuses ``text``, or None when it is a valid query (an empty table)."""
    try:
        db.execute(f"SELECT rowid FROM {FTS_PROBE} WHERE {FTS_PROBE} MATCH ? LIMIT 1", (text,)).fetchall()
    except sqlite3.OperationalError as exc:
        if "interrupt" in str(exc):
            raise
        return str(exc)
    return None


def _cursor_position(db: sqlite3.Connection, tenant_id: int, sort: str, trace_id: str) -> tuple[Any, int]:
    """(sort value, seq) of the tenant's trace a cursor names.

    Raises:
        InvalidArgument: the tenant has no such trace.
    """
    row = db.execute(
        f"SELECT {_SORT_EXPR[sort]}, t.seq FROM traces t WHERE t.tenant_id = ? AND t.id = ?", (tenant_id, trace_id)
    ).fetchone()
    if row is None:
        raise InvalidArgument(
            "cursor is not valid for this list: pass the nextCursor of the previous page unchanged, or omit it",
            {"field": "cursor"},
        )
    return row[0], int(row[1])


def build_trace_query(
    tenant_id: int,
    q: TraceFilter,
    common_tags: frozenset[str] = frozenset(),
    common_query: bool = False,
    *,
    fts_table: str = FTS_PROBE,
    after: tuple[Any, int] | None = None,
) -> tuple[str, dict[str, Any]]:
    """The one place where ``list_traces`` filters become SQL (named parameters, never string values).

    ``fts_table`` is the tenant's full-text table (a name the store made, never caller text); ``after``
    is the (sort value, seq) of the row a cursor names: the page starts after it.
    """
    sort = _SORT_EXPR[q.sort]
    where = ["t.tenant_id = :tenant"]
    params: dict[str, Any] = {"tenant": tenant_id, "limit": q.limit + 1}
    if q.status is not None:
        where.append("t.status = :status")
        params["status"] = 1 if q.status == "error" else 0
    if q.prompt_name is not None:
        where.append("t.prompt_name = :prompt_name")
        params["prompt_name"] = q.prompt_name
    if q.prompt_version is not None:
        where.append("t.prompt_version = :prompt_version")
        params["prompt_version"] = q.prompt_version
    if q.model is not None:
        if "/" in q.model:
            prov, name = q.model.split("/", 1)
            where.append("(t.model_name = :model OR (t.model_provider = :model_prov AND t.model_name = :model_name))")
            params.update(model_prov=prov, model_name=name)
        else:
            where.append("t.model_name = :model")
        params["model"] = q.model
    if q.provider is not None:
        where.append("t.model_provider = :provider")
        params["provider"] = q.provider
    for i, tag in enumerate(dict.fromkeys(q.tags)):
        if tag in common_tags:  # walk the sort order and probe the tag per row
            where.append(
                f"EXISTS (SELECT 1 FROM trace_tags WHERE tenant_id = :tenant AND tag = :tag{i} AND seq = t.seq)"
            )
        else:  # few rows carry it: start from them
            where.append(f"t.seq IN (SELECT seq FROM trace_tags WHERE tenant_id = :tenant AND tag = :tag{i})")
        params[f"tag{i}"] = tag
    if q.since_ms is not None:
        where.append("t.seq >= :since")
        params["since"] = q.since_ms << SLOT_BITS
    if q.until_ms is not None:
        where.append("t.seq < :until")
        params["until"] = q.until_ms << SLOT_BITS
    if q.min_cost is not None:
        where.append("ifnull(t.cost, -1.0) >= :min_cost")  # the cost index's expression: a range scan
        params["min_cost"] = q.min_cost
    if q.min_duration is not None:  # min_duration >= 0: an unknown duration (stored < 0) never matches
        where.append("t.duration >= :min_duration")
        params["min_duration"] = q.min_duration
    if q.min_total_tokens is not None:
        where.append("t.total_tokens >= :min_total_tokens")
        params["min_total_tokens"] = q.min_total_tokens
    source = "traces t"
    if q.query is not None:
        fts = fts_table
        params["query"] = q.query
        if q.sort == "created_at":
            # Newest first: walk the full-text index in rowid (= creation) order and stop at the limit.
            source = f"{fts} f JOIN traces t ON t.seq = f.rowid"
            where.append("f.body MATCH :query")
            sort = "f.rowid"
        elif common_query:  # many matches: walk the sort index and probe the full-text index per row
            where.append(f"EXISTS (SELECT 1 FROM {fts} WHERE {fts} MATCH :query AND rowid = t.seq)")
        else:  # few matches: start from them
            where.append(f"t.seq IN (SELECT rowid FROM {fts} WHERE {fts} MATCH :query)")
    if q.session_id is not None:
        where.append("t.session_id = :session_id")
        params["session_id"] = q.session_id
    if q.source is not None:
        where.append("t.source = :source")
        params["source"] = q.source
    direction = "DESC" if q.order == "desc" else "ASC"
    if after is not None:
        value, seq = after
        op = "<" if q.order == "desc" else ">"
        if q.sort == "created_at":
            where.append(f"{sort} {op} :cursor_seq")
        else:
            where.append(f"({sort}, t.seq) {op} (:cursor_value, :cursor_seq)")
            params["cursor_value"] = value
        params["cursor_seq"] = seq
    order = f"{sort} {direction}" if q.sort == "created_at" else f"{sort} {direction}, t.seq {direction}"
    sql = f"SELECT {_ROW_COLUMNS} FROM {source} WHERE {' AND '.join(where)} ORDER BY {order} LIMIT :limit"
    return sql, params


def _sort_value(row: sqlite3.Row, sort: str) -> Any:
    if sort == "created_at":
        return row["seq"]
    if sort == "cost":
        return row["cost"] if row["cost"] is not None else -1.0
    return row[sort]


def _row_to_summary(row: sqlite3.Row) -> TraceSummary:
    created_ms, output_preview = summary_fields(row["seq"], row["body"])
    return summary_of(row, created_ms, output_preview)


def _free_seq(db: sqlite3.Connection, created_ms: int, free: dict[int, int]) -> int:
    """The first free seq of this millisecond (4096 slots; a full millisecond spills into the next), taken.

    ``free`` holds, for each millisecond one write has taken seqs in (or looked at), its next free seq: the
    stored rows are read once per millisecond, and the rows of the write need not be inserted yet.
    """
    ms = max(0, created_ms)
    while True:
        base = ms << SLOT_BITS
        seq = free.get(ms)
        if seq is None:
            (top,) = db.execute(
                "SELECT max(seq) FROM traces WHERE seq BETWEEN ? AND ?", (base, base + SLOT_MASK)
            ).fetchone()
            seq = base if top is None else int(top) + 1
        if seq <= base + SLOT_MASK:
            free[ms] = seq + 1
            return seq
        free[ms] = seq  # full
        ms += 1


async def open_store(path: str | Path) -> SqliteStore:
    return await SqliteStore.open(path)

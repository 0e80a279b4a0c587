"""The PostgreSQL store: the ``Store`` protocol on one database shared by several server processes.

Traces are ordered by ``(created_ms, n)`` (``n`` from one sequence), so every process lists them in
the same order and a cursor sealed by one process opens in any other: the cursor key is kept in the
database. Full text is a ``tsvector`` column under a GIN index led by the tenant, with the SQLite store's
words and query language (store.pg_fulltext) and the same bounds (store.fulltext). Roll-ups are merged
at insert with ``INSERT … ON CONFLICT DO UPDATE``, so writers in several processes add up correctly.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..dburls import describe_url, is_postgres_url
from ..errors import Conflict, InvalidArgument
from ..ingest_records import IngestResult, TraceRecord
from ..models import Trace
from ..records import StatsFilter, StatsRow, TraceFilter, TracePage, TraceSummary
from .codec import (
    encode_duration,
    pack_body,
    pack_manifest,
    preview,
    record_created_ms,
    record_manifest,
    search_text,
    summary_of,
    unpack_trace,
)
from .connections import ReadBudgetExceeded
from .fulltext import check_fulltext_query
from .pg_fulltext import document_vector, to_tsquery_literal
from .postgres_golden import PostgresGoldenMixin
from .postgres_prompts import PostgresPromptsMixin
from .rollups import STATS_GROUPS, rollup_fields, stats_rows
from .stats_rollups import (
    PG_UPSERT,
    RAW_COLUMNS,
    GroupTotals,
    batch_of,
    dims_for,
    lanes_int,
    plan_window,
    postgres_rows,
    segment_sql,
)

if TYPE_CHECKING:
    from psycopg import AsyncConnection

__all__ = ["PostgresStore", "describe_url", "is_postgres_url"]

_SORT_EXPR = {
    "created_at": None,
    "cost": "coalesce(t.cost, -1.0)",
    "total_tokens": "t.total_tokens",
    "duration": "t.duration",  # unknown is stored below every real duration: first asc, last desc
}
_ROW_COLUMNS = (
    "t.n, t.created_ms, t.id, t.prompt_name, t.prompt_version, t.model_provider, t.model_name, "
    "t.status, t.total_tokens, t.cost, t.duration, t.tags, t.body"
)
_COPY_COLUMNS = (
    "tenant_id, n, id, created_ms, prompt_name, prompt_version, manifest_id, model_provider, model_name, status, "
    "input_tokens, output_tokens, total_tokens, cost, duration, source, session_id, parent_trace_id, tags, body, "
    "digest, fts"
)


class PostgresStore(PostgresPromptsMixin, PostgresGoldenMixin):
    """``Store`` on a PostgreSQL database (see the module docstring)."""

    # -- traces -----------------------------------------------------------------------------------

    async def insert_traces(self, tenant: str, records: list[TraceRecord]) -> list[IngestResult]:
        """Store traces in one transaction. A client id seen before with other content is a conflict
        and nothing of the batch is stored; with the same content it is a no-op success."""
        if not records:
            return []
        return await self._write(self._insert_traces_tx, tenant, records)

    async def _insert_traces_tx(
        self, conn: AsyncConnection[Any], tenant: str, records: list[TraceRecord]
    ) -> list[IngestResult]:
        tid = await self._tenant_id_tx(conn, tenant)
        results: list[IngestResult] = []
        first_digest: dict[str, bytes] = {}
        client_ids = [r.trace.id for r in records if r.client_id]
        stored: dict[str, bytes] = {}
        if client_ids:
            cur = await conn.execute(
                "SELECT id, digest FROM traces WHERE tenant_id = %s AND id = ANY(%s)", (tid, client_ids)
            )
            stored = {r["id"]: bytes(r["digest"]) for r in await cur.fetchall()}
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

        trace_manifest: dict[str, bytes] = {}
        pending: dict[bytes, str] = {}
        for rec in new:
            key = record_manifest(rec)
            trace_manifest[rec.trace.id] = key.digest
            if key.digest not in self._manifest_ids:
                pending[key.digest] = key.text
        manifest_ids = {d: self._manifest_ids[d] for d in trace_manifest.values() if d in self._manifest_ids}
        manifest_ids.update(await self._store_manifests(conn, pending))

        await _write_rollups(conn, tid, new)

        cur = await conn.execute(
            "SELECT nextval(pg_get_serial_sequence('traces', 'n')) AS n FROM generate_series(1, %s)", (len(new),)
        )
        numbers = sorted(int(r["n"]) for r in await cur.fetchall())
        tag_rows: list[tuple[int, str, int]] = []
        async with conn.cursor().copy(f"COPY traces ({_COPY_COLUMNS}) FROM STDIN") as copy:
            for rec, n in zip(new, numbers, strict=True):
                t = rec.trace
                await copy.write_row(
                    (
                        tid,
                        n,
                        t.id,
                        record_created_ms(rec),
                        t.prompt_name,
                        t.prompt_version,
                        manifest_ids[trace_manifest[t.id]],
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
                        document_vector(search_text(t)),
                    )
                )
                tag_rows.extend((tid, tag, n) for tag in dict.fromkeys(t.tags))
        if tag_rows:
            await conn.cursor().executemany(
                "INSERT INTO trace_tags(tenant_id, tag, n) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING", tag_rows
            )
        return results

    async def _store_manifests(self, conn: AsyncConnection[Any], pending: dict[bytes, str]) -> dict[bytes, int]:
        """Insert manifests not yet known (in digest order, so concurrent writers never wait in a cycle);
        their ids by digest."""
        ids: dict[bytes, int] = {}
        for mdigest in sorted(pending):
            cur = await conn.execute(
                "INSERT INTO manifests(digest, data) VALUES (%s, %s) ON CONFLICT (digest) DO NOTHING RETURNING id",
                (mdigest, pack_manifest(pending[mdigest])),
            )
            row = await cur.fetchone()
            if row is None:
                cur = await conn.execute("SELECT id FROM manifests WHERE digest = %s", (mdigest,))
                row = await cur.fetchone()
            assert row is not None
            ids[mdigest] = int(row["id"])
        if len(self._manifest_ids) > 10_000:
            self._manifest_ids.clear()
        self._manifest_ids.update(ids)
        return ids

    async def get_trace(self, tenant: str, trace_id: str) -> Trace | None:
        tid = await self._tenant_id(tenant)
        if tid is None:
            return None
        row = await self._fetchone(
            "SELECT t.*, t.created_ms << 12 AS seq, m.data AS manifest FROM traces t "
            "JOIN manifests m ON m.id = t.manifest_id WHERE t.tenant_id = %s AND t.id = %s",
            (tid, trace_id),
        )
        if row is None:
            return None
        return unpack_trace(row, bytes(row["manifest"]))

    async def list_traces(self, tenant: str, query: TraceFilter) -> TracePage:
        """One page of the tenant's traces, read in one transaction within the budget.

        Raises:
            InvalidArgument: a malformed or too costly full-text query, a cursor not made for this list,
                or a read that ran past the time budget.
        """
        tsquery: str | None = None
        if query.query:
            check_fulltext_query(query.query)
            tsquery = to_tsquery_literal(query.query)
        after_id = self._cursors.open(tenant, query, query.cursor) if query.cursor else None
        try:
            rows = await self._read(self._list_tx, tenant, query, tsquery, after_id)
        except ReadBudgetExceeded as exc:
            if not query.query:
                raise
            raise InvalidArgument(
                "full-text query too expensive: it ran past the "
                f"{self._budget_ms:g} ms budget and was stopped; use longer words, fewer terms, or "
                "add filters (since, promptName, status …)",
                {"field": "query", "rule": "time_budget", "budgetMs": exc.details.get("budgetMs")},
            ) from None
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        out = [_row_to_summary(r) for r in rows]
        next_cursor = self._cursors.seal(tenant, query, rows[-1]["id"]) if more and rows else None
        return TracePage(rows=out, next_cursor=next_cursor)

    async def _list_tx(
        self, conn: AsyncConnection[Any], tenant: str, query: TraceFilter, tsquery: str | None, after_id: str | None
    ) -> list[dict[str, Any]]:
        cur = await conn.execute("SELECT id FROM tenants WHERE name = %s", (tenant,))
        row = await cur.fetchone()
        tid = -1 if row is None else int(row["id"])
        after = None
        if after_id is not None:
            after = await _cursor_position(conn, tid, query.sort, after_id)
        if query.query and tsquery is None:
            return []  # an empty phrase: matches nothing, as in FTS5
        sql, params = build_trace_query(tid, query, tsquery, after)
        cur = await conn.execute(sql, params)
        return list(await cur.fetchall())

    async def trace_stats(self, tenant: str, query: StatsFilter) -> list[StatsRow]:
        """Whole days, hours, ten minutes and minutes of the window from the roll-ups; the sub-minute edges
        from the traces (store.stats_rollups)."""
        tid = await self._tenant_id(tenant)
        if tid is None:
            return []
        prompt = query.prompt_name or None
        dims = dims_for(query.group_by, prompt is not None)
        segments, raw = plan_window(query.since_ms, query.until_ms)

        async def run(conn: AsyncConnection[Any]) -> Any:
            from psycopg.rows import tuple_row

            totals = GroupTotals(STATS_GROUPS[query.group_by])
            cur = conn.cursor(row_factory=tuple_row)
            for segment in segments:
                where, params = segment_sql(segment, "%s")
                sql = (
                    "SELECT prompt_name, prompt_version, model_provider, model_name, status, count, errors, "
                    "input_tokens, output_tokens, total_tokens, cost, priced, hist_lo, hist FROM trace_stats_rollups "
                    f"WHERE tenant_id = %s AND dims = %s AND {where}"
                )
                args: list[Any] = [tid, dims, *params]
                if prompt:
                    sql += " AND prompt_name = %s"
                    args.append(prompt)
                await cur.execute(sql, args)
                totals.add_rows(await cur.fetchall(), lanes=lanes_int)
            for start, end in raw:
                sql = f"SELECT {RAW_COLUMNS} FROM traces WHERE tenant_id = %s AND created_ms >= %s AND created_ms < %s"
                rargs: list[Any] = [tid, start, end]
                if prompt:
                    sql += " AND prompt_name = %s"
                    rargs.append(prompt)
                await cur.execute(sql, rargs)
                totals.add_raw(await cur.fetchall())
            return totals.result()

        return stats_rows(query.group_by, await self._read(run))

    async def count_traces(self, tenant: str) -> int:
        tid = await self._tenant_id(tenant)
        if tid is None:
            return 0
        row = await self._fetchone("SELECT count(*) AS n FROM traces WHERE tenant_id = %s", (tid,))
        return int(row["n"]) if row else 0

    async def integrity_check(self) -> str:
        """ "ok" when every trace's manifest and tags resolve (PostgreSQL checks its own pages)."""
        row = await self._fetchone(
            "SELECT (SELECT count(*) FROM trace_tags g LEFT JOIN traces t ON t.tenant_id = g.tenant_id "
            "AND t.n = g.n WHERE t.n IS NULL) AS orphans"
        )
        return "ok" if row is not None and row["orphans"] == 0 else "orphaned tag rows"


async def _write_rollups(conn: AsyncConnection[Any], tenant_id: int, new: list[TraceRecord]) -> None:
    """Add the new traces to the stored roll-ups (store.stats_rollups)."""
    rows = postgres_rows(tenant_id, batch_of((record_created_ms(r), rollup_fields(r.trace)) for r in new))
    if rows:
        await conn.cursor().executemany(PG_UPSERT, rows)


async def _cursor_position(
    conn: AsyncConnection[Any], tenant_id: int, sort: str, trace_id: str
) -> tuple[Any, int, int]:
    """(sort value, created_ms, n) of the tenant's trace a cursor names.

    Raises:
        InvalidArgument: the tenant has no such trace.
    """
    expr = _SORT_EXPR[sort] or "NULL"
    cur = await conn.execute(
        f"SELECT {expr} AS v, t.created_ms, t.n FROM traces t WHERE t.tenant_id = %s AND t.id = %s",
        (tenant_id, trace_id),
    )
    row = await cur.fetchone()
    if row is None:
        raise InvalidArgument(
            "cursor is not valid for this list: pass the nextCursor of the previous page unchanged, or omit it",
            {"field": "cursor"},
        )
    return row["v"], int(row["created_ms"]), int(row["n"])


def build_trace_query(
    tenant_id: int, q: TraceFilter, tsquery: str | None = None, after: tuple[Any, int, int] | None = None
) -> tuple[str, dict[str, Any]]:
    """The one place where ``list_traces`` filters become SQL (named parameters, never caller text).

    ``tsquery`` is the query's ``tsquery`` literal (bound as a parameter); ``after`` the (sort value,
    created_ms, n) of the row a cursor names: the page starts after it.
    """
    sort = _SORT_EXPR[q.sort]
    where = ["t.tenant_id = %(tenant)s"]
    params: dict[str, Any] = {"tenant": tenant_id, "limit": q.limit + 1}
    if q.status is not None:
        where.append("t.status = %(status)s")
        params["status"] = 1 if q.status == "error" else 0
    if q.prompt_name is not None:
        where.append("t.prompt_name = %(prompt_name)s")
        params["prompt_name"] = q.prompt_name
    if q.prompt_version is not None:
        where.append("t.prompt_version = %(prompt_version)s")
        params["prompt_version"] = q.prompt_version
    if q.model is not None:
        if "/" in q.model:
            prov, name = q.model.split("/", 1)
            where.append(
                "(t.model_name = %(model)s OR (t.model_provider = %(model_prov)s AND t.model_name = %(model_name)s))"
            )
            params.update(model_prov=prov, model_name=name)
        else:
            where.append("t.model_name = %(model)s")
        params["model"] = q.model
    if q.provider is not None:
        where.append("t.model_provider = %(provider)s")
        params["provider"] = q.provider
    for i, tag in enumerate(dict.fromkeys(q.tags)):
        where.append(
            f"EXISTS (SELECT 1 FROM trace_tags g WHERE g.tenant_id = t.tenant_id AND g.tag = %(tag{i})s AND g.n = t.n)"
        )
        params[f"tag{i}"] = tag
    if q.since_ms is not None:
        where.append("t.created_ms >= %(since)s")
        params["since"] = q.since_ms
    if q.until_ms is not None:
        where.append("t.created_ms < %(until)s")
        params["until"] = q.until_ms
    if q.min_cost is not None:
        where.append("coalesce(t.cost, -1.0) >= %(min_cost)s")
        params["min_cost"] = q.min_cost
    if q.min_duration is not None:
        where.append("t.duration >= %(min_duration)s")
        params["min_duration"] = q.min_duration
    if q.min_total_tokens is not None:
        where.append("t.total_tokens >= %(min_total_tokens)s")
        params["min_total_tokens"] = q.min_total_tokens
    if tsquery is not None:
        where.append("t.fts @@ %(tsquery)s::tsquery")
        params["tsquery"] = tsquery
    if q.session_id is not None:
        where.append("t.session_id = %(session_id)s")
        params["session_id"] = q.session_id
    if q.source is not None:
        where.append("t.source = %(source)s")
        params["source"] = q.source
    direction = "DESC" if q.order == "desc" else "ASC"
    keys = ["t.created_ms", "t.n"] if sort is None else [sort, "t.created_ms", "t.n"]
    if after is not None:
        value, created_ms, n = after
        op = "<" if q.order == "desc" else ">"
        marks = ["%(cursor_ms)s", "%(cursor_n)s"]
        if sort is not None:
            marks.insert(0, "%(cursor_value)s")
        where.append(f"({', '.join(keys)}) {op} ({', '.join(marks)})")
        params.update(cursor_value=value, cursor_ms=created_ms, cursor_n=n)
    order = ", ".join(f"{k} {direction}" for k in keys)
    sql = f"SELECT {_ROW_COLUMNS} FROM traces t WHERE {' AND '.join(where)} ORDER BY {order} LIMIT %(limit)s"
    return sql, params


def _row_to_summary(row: dict[str, Any]) -> TraceSummary:
    return summary_of(row, int(row["created_ms"]), preview(bytes(row["body"])))

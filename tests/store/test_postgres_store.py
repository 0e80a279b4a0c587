"""The PostgreSQL store on its own: migrations under concurrent starts, indexes led by the tenant, cursors
shared between processes, full text with the SQLite store's semantics, the read budget, and what a
connection URL may show."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest

from agnt_traces.app import App, open_app
from agnt_traces.config import Settings
from agnt_traces.errors import Conflict, InvalidArgument
from agnt_traces.services.queries import TraceQuery
from agnt_traces.services.traces import TraceService
from agnt_traces.store import open_store, pg_migrations
from agnt_traces.store import postgres as pg_module
from agnt_traces.store.connections import ReadBudgetExceeded
from agnt_traces.store.postgres import PostgresStore
from agnt_traces.store.postgres_base import describe_url
from agnt_traces.store.sqlite import SqliteStore
from factories import trace_payload

pytestmark = pytest.mark.anyio


def _record(**overrides: Any) -> Any:
    payload = {"createdAt": "2026-01-01T00:00:00Z", **trace_payload(**overrides)}
    return TraceService(None).prepare(payload)  # type: ignore[arg-type]  # validation only: no store


def _sql(url: str, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return list(conn.execute(sql, params).fetchall())


async def test_url_selects_postgres_and_a_path_keeps_sqlite(pg_url: str, tmp_path: Path) -> None:
    pg = await open_store(pg_url)
    lite = await open_store(str(tmp_path / "t.db"))
    try:
        assert isinstance(pg, PostgresStore) and isinstance(lite, SqliteStore)
    finally:
        await pg.close()
        await lite.close()


async def test_migrations_are_recorded_once_when_several_servers_start_at_once(pg_url: str) -> None:
    stores: list[PostgresStore] = []

    async def start() -> None:
        stores.append(await PostgresStore.open(pg_url, pool_size=2))

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(start)
    try:
        rows = _sql(pg_url, "SELECT number, name FROM schema_migrations ORDER BY number")
        assert rows == [(n, name) for n, name, _ in pg_migrations.MIGRATIONS]
        # One shared cursor key: every server seals and opens the same cursors.
        assert len({s._cursors._mac_key for s in stores}) == 1
        assert _sql(pg_url, "SELECT count(*) FROM store_secrets") == [(1,)]
    finally:
        for s in stores:
            await s.close()
    again = await PostgresStore.open(pg_url)
    await again.close()
    assert len(_sql(pg_url, "SELECT number FROM schema_migrations")) == len(pg_migrations.MIGRATIONS)


async def test_every_index_of_a_tenant_table_starts_with_tenant_id(pg_url: str) -> None:
    store = await PostgresStore.open(pg_url)
    await store.close()
    rows = _sql(
        pg_url,
        "SELECT c.relname, i.relname, a.attname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
        "JOIN pg_class c ON c.oid = x.indrelid JOIN pg_namespace s ON s.oid = c.relnamespace "
        "LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = x.indkey[0] "
        "WHERE s.nspname = 'public' AND EXISTS (SELECT 1 FROM pg_attribute t WHERE t.attrelid = c.oid "
        "AND t.attname = 'tenant_id' AND NOT t.attisdropped)",
    )
    assert len(rows) >= 15
    # Not led by the tenant, on purpose: a prompt's surrogate key, a token's id and hash (a token is how
    # the tenant is found), and idle-session expiry, which sweeps every tenant.
    exempt = {"prompts_pkey", "api_tokens_pkey", "api_tokens_token_hash_key", "ix_sessions_idle"}
    assert {index for _, index, first in rows if first != "tenant_id"} == exempt


async def test_a_cursor_from_one_server_continues_on_another(pg_url: str) -> None:
    one, two = await PostgresStore.open(pg_url), await PostgresStore.open(pg_url)
    try:
        await one.insert_traces("t", [_record(output=f"o{i}", cost=0.1 * (i % 3)) for i in range(9)])
        for sort in ("created_at", "cost"):
            query = TraceQuery(sort=sort, limit=4)
            whole = [r.id for r in (await one.list_traces("t", TraceQuery(sort=sort, limit=50).to_filter())).rows]
            seen: list[str] = []
            cursor = None
            for store in (one, two, one, two):
                page = await store.list_traces("t", query.model_copy(update={"cursor": cursor}).to_filter())
                seen += [r.id for r in page.rows]
                cursor = page.next_cursor
                if cursor is None:
                    break
            assert seen == whole
    finally:
        await one.close()
        await two.close()


async def test_the_same_client_id_from_two_servers_is_stored_once(pg_url: str) -> None:
    one, two = await PostgresStore.open(pg_url), await PostgresStore.open(pg_url)
    results: list[Any] = []

    async def put(store: PostgresStore) -> None:
        results.append(await store.insert_traces("t", [_record(id="same-id")]))

    try:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for store in (one, two, one, two):
                    tg.start_soon(put, store)
        assert sorted(r[0].created for r in results) == [False, False, False, True]
        with pytest.raises(Conflict):
            await two.insert_traces("t", [_record(id="same-id", output="other content")])
        assert _sql(pg_url, "SELECT count(*) FROM traces") == [(1,)]
    finally:
        await one.close()
        await two.close()


async def test_identical_manifests_are_stored_once(pg_url: str) -> None:
    async with open_app(Settings(db_path=pg_url)) as app:
        for _ in range(3):
            await app.traces.ingest("default", trace_payload())
    assert _sql(pg_url, "SELECT count(*) FROM manifests") == [(1,)]


DOCS = {
    "refund": "Your refund was issued yesterday.",
    "refunds": "Refunds are slow in December.",
    "cafe": "Le café est fermé.",
    "email": "write to bob@example.com or see https://help.example.org/refund-policy",
    "ticket": "Ticket 4521 escalated to billing.",
    "under": "snake_case and CamelCase words",
}
QUERIES = [
    "refund",
    "REFUND",
    "refund*",
    '"refund was"',
    '"your refu"*',
    "refund OR billing",
    "refund NOT yesterday",
    "refund AND yesterday",
    "refund yesterday",
    "(refund OR ticket) NOT slow",
    "cafe",
    "café",
    "ferme",
    "example",
    "bob",
    "policy",
    '"refund policy"',
    "4521",
    "snake_case",
    "snake",
    '""',
    "nothing",
]


async def test_full_text_finds_the_same_traces_as_sqlite(pg_url: str, tmp_path: Path) -> None:
    pg = await PostgresStore.open(pg_url)
    lite = await SqliteStore.open(str(tmp_path / "t.db"))
    try:
        for store in (pg, lite):
            await store.insert_traces(
                "t", [_record(id=key, output=text, messages=[], variables={}) for key, text in DOCS.items()]
            )
        for text in QUERIES:
            found = []
            for store in (pg, lite):
                page = await store.list_traces("t", TraceQuery(query=text, limit=50).to_filter())  # type: ignore[attr-defined]
                found.append(sorted(r.id for r in page.rows))
            assert found[0] == found[1], text
        # A handful of them, spelled out: the words are cut as SQLite cuts them.
        page = await pg.list_traces("t", TraceQuery(query="example").to_filter())
        assert {r.id for r in page.rows} == {"email"}
    finally:
        await pg.close()
        await lite.close()


@pytest.mark.parametrize("bad", ['"unterminated', "AND", "refund AND", "(refund", "NEAR(", "refund OR", "a:b", "*"])
async def test_malformed_queries_are_refused_naming_the_field(pg_url: str, bad: str) -> None:
    store = await PostgresStore.open(pg_url)
    try:
        with pytest.raises(InvalidArgument) as exc:
            await store.list_traces("t", TraceQuery(query=bad).to_filter())
        assert exc.value.details.get("field") == "query"
    finally:
        await store.close()


@pytest.mark.parametrize(
    "text", ["x'); DROP TABLE traces; --", "refund' | 'x", "'refund':*", "a & b", "!refund", "refund <-> x", "\\'"]
)
async def test_query_text_never_becomes_sql_or_tsquery_syntax(pg_url: str, text: str) -> None:
    store = await PostgresStore.open(pg_url)
    try:
        await store.insert_traces("t", [_record(output="refund issued")])
        try:
            page = await store.list_traces("t", TraceQuery(query=text).to_filter())
        except InvalidArgument as exc:
            assert exc.details.get("field") == "query"
        else:
            assert all(r.output_preview == "refund issued" for r in page.rows)
        assert _sql(pg_url, "SELECT count(*) FROM traces") == [(1,)]
    finally:
        await store.close()


async def test_a_read_past_the_budget_is_stopped_with_the_sqlite_error(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await PostgresStore.open(pg_url, query_budget_ms=100)
    try:
        await store.insert_traces("t", [_record(output="refund issued")])
        with anyio.fail_after(10), pytest.raises(ReadBudgetExceeded):
            await store._read(lambda conn: conn.execute("SELECT pg_sleep(3)"))
        real = pg_module.build_trace_query

        def slow(*args: Any, **kwargs: Any) -> tuple[str, dict[str, Any]]:
            sql, params = real(*args, **kwargs)
            return sql.replace("WHERE ", "WHERE pg_sleep(3) IS NOT NULL AND ", 1), params

        monkeypatch.setattr(pg_module, "build_trace_query", slow)
        with anyio.fail_after(10), pytest.raises(InvalidArgument) as exc:
            await store.list_traces("t", TraceQuery(query="refund").to_filter())
        assert exc.value.details["rule"] == "time_budget" and exc.value.details["field"] == "query"
        # The budget is the read's own: the next read on the same pooled connection is not limited by it.
        monkeypatch.setattr(pg_module, "build_trace_query", real)
        assert len((await store.list_traces("t", TraceQuery().to_filter())).rows) == 1
        assert await store.health() is None
    finally:
        await store.close()


async def test_a_password_never_shows_in_messages_or_logs(pg_url: str, caplog: pytest.LogCaptureFixture) -> None:
    secret_url = "postgresql://postgres:hunter2secret@127.0.0.1:1/nodb"  # nothing listens on port 1
    assert "hunter2secret" not in describe_url(secret_url)
    assert describe_url("postgresql://u:pw@h:5/db?sslpassword=pw2") == "postgresql://u@h:5/db"
    with caplog.at_level(logging.DEBUG), pytest.raises(InvalidArgument) as exc:
        await open_store(secret_url)
    assert "hunter2secret" not in exc.value.message and "could not connect" in exc.value.message
    assert "hunter2secret" not in caplog.text


async def test_an_unreachable_database_is_a_503_not_a_traceback(pg_url: str, pg_cluster: Any) -> None:
    store = await PostgresStore.open(pg_url)
    try:
        await store.insert_traces("t", [_record()])
        with psycopg.connect(pg_cluster.admin_url, autocommit=True) as conn:
            name = pg_url.rsplit("/", 1)[1]
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        # The pool notices broken connections and makes new ones: the store keeps answering.
        with anyio.fail_after(20):
            while True:
                try:
                    page = await store.list_traces("t", TraceQuery().to_filter())
                    break
                except Exception as exc:  # a broken pooled connection: the next one is fresh
                    assert getattr(exc, "http_status", 503) == 503
        assert len(page.rows) == 1
    finally:
        await store.close()


async def test_the_app_runs_on_postgres_from_the_environment(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGNT_TRACES_DB", pg_url)
    settings = Settings.from_env()
    app: App
    async with open_app(settings) as app:
        assert isinstance(app.store, PostgresStore)
        await app.traces.ingest("default", trace_payload())
        assert len((await app.traces.list("default", TraceQuery())).render()["traces"]) == 1

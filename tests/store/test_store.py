from __future__ import annotations

import sqlite3

import pytest

from agnt_traces.app import App, open_app
from agnt_traces.config import Settings
from agnt_traces.errors import Conflict, InvalidArgument
from agnt_traces.services.queries import StatsQuery, TraceQuery
from agnt_traces.store import migrations
from factories import trace_payload

pytestmark = [pytest.mark.anyio, pytest.mark.both_stores]


def q(**kw: object) -> TraceQuery:
    return TraceQuery.model_validate(kw)


async def ids(app: App, **kw: object) -> list[str]:
    page = (await app.traces.list("default", q(**kw))).render()
    return [r["id"] for r in page["traces"]]


@pytest.mark.sqlite_only
async def test_migrations_apply_from_empty_and_are_recorded(db_path: str) -> None:
    async with open_app(Settings(db_path=db_path)):
        pass
    db = sqlite3.connect(db_path)
    assert migrations.applied(db) == [n for n, _, _ in migrations.MIGRATIONS]
    assert migrations.pending(db) == []
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"traces", "manifests", "fts_probe", "store_secrets", "prompts", "sessions", "api_tokens"} <= tables


@pytest.mark.sqlite_only
async def test_reopen_keeps_data_and_runs_no_migration_twice(db_path: str) -> None:
    async with open_app(Settings(db_path=db_path)) as app:
        created = await app.traces.ingest("default", trace_payload())
    async with open_app(Settings(db_path=db_path)) as app:
        assert (await app.traces.get("default", created.id)).output == "Your refund was issued yesterday."
    db = sqlite3.connect(db_path)
    assert db.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(migrations.MIGRATIONS)


def test_failed_migration_leaves_nothing_half_applied(tmp_path: object) -> None:
    db = sqlite3.connect(":memory:", isolation_level=None)

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half (x INTEGER)")
        raise RuntimeError("boom")

    saved = list(migrations.MIGRATIONS)
    migrations.MIGRATIONS.append((99, "broken", broken))
    try:
        with pytest.raises(RuntimeError):
            migrations.migrate(db)
    finally:
        migrations.MIGRATIONS[:] = saved
    assert 99 not in migrations.applied(db)
    assert db.execute("SELECT count(*) FROM sqlite_master WHERE name='half'").fetchone()[0] == 0
    assert migrations.applied(db) == [n for n, _, _ in saved]


async def test_roundtrip_keeps_every_field(app: App) -> None:
    payload = trace_payload(
        toolCalls=[{"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}],
        metadata={"user": "u1"},
        sessionId="s1",
        parentTraceId="p1",
        source="ingest",
        model={"provider": "openai", "name": "gpt-4o-mini", "metadata": {"region": "eu"}},
    )
    created = await app.traces.ingest("default", payload)
    got = (await app.traces.get("default", created.id)).to_json()
    for key, value in payload.items():
        if key == "manifest":
            assert got["manifest"] == {**value}
        else:
            assert got[key] == value, key
    assert got["totalTokens"] == 49
    assert got["etag"] == "e1"


@pytest.mark.sqlite_only
async def test_identical_manifests_are_stored_once(app: App, db_path: str) -> None:
    for i in range(5):
        await app.traces.ingest("default", trace_payload(output=f"answer {i}"))
    await app.traces.ingest("default", trace_payload(manifest={"system": "other"}))
    db = sqlite3.connect(db_path)
    assert db.execute("SELECT count(*) FROM manifests").fetchone()[0] == 2
    assert db.execute("SELECT count(*) FROM traces").fetchone()[0] == 6


async def test_client_id_is_idempotent_and_conflicts_on_other_content(app: App) -> None:
    first = await app.traces.ingest("default", trace_payload(id="client-1"))
    again = await app.traces.ingest("default", trace_payload(id="client-1"))
    assert first.render() == {"id": "client-1", "created": True}
    assert again.render() == {"id": "client-1", "created": False}
    with pytest.raises(Conflict) as exc:
        await app.traces.ingest("default", trace_payload(id="client-1", output="changed"))
    assert "client-1" in exc.value.message
    assert (await app.traces.get("default", "client-1")).output == "Your refund was issued yesterday."


async def test_conflict_in_a_batch_stores_nothing_of_it(app: App) -> None:
    await app.traces.ingest("default", trace_payload(id="x1"))
    with pytest.raises(Conflict):
        await app.traces.ingest_many("default", [trace_payload(id="new-1"), trace_payload(id="x1", output="different")])
    assert await ids(app) == ["x1"]


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"inputTokens": -1}, "inputTokens"),
        ({"status": "maybe"}, "status"),
        ({"cost": float("inf")}, "cost"),
        ({"cost": float("nan")}, "cost"),
        ({"promtName": "x"}, "promtName"),
        ({"duration": -0.5}, "duration"),
        ({"createdAt": "yesterday-ish"}, "createdAt"),
        ({"createdAt": "1969-12-31T23:59:59Z"}, "createdAt"),
        ({"promptName": "Has Spaces"}, "promptName"),
    ],
)
async def test_bad_trace_is_refused_naming_the_field_and_stores_nothing(
    app: App, override: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidArgument) as exc:
        await app.traces.ingest("default", trace_payload(**override))
    assert field in exc.value.message
    assert await ids(app) == []


async def _seed(app: App) -> dict[str, str]:
    specs = {
        "a": dict(
            promptName="support",
            promptVersion=1,
            cost=0.003,
            duration=1.5,
            inputTokens=100,
            tags=["prod", "eu"],
            createdAt="2026-01-01T00:00:00Z",
            output="refund issued",
        ),
        "b": dict(
            promptName="support",
            promptVersion=2,
            cost=0.001,
            duration=0.2,
            inputTokens=10,
            tags=["prod"],
            createdAt="2026-01-02T00:00:00Z",
            output="shipping delayed",
            model={"provider": "anthropic", "name": "claude-sonnet-4-5"},
        ),
        "c": dict(
            promptName="review",
            promptVersion=1,
            cost=None,
            duration=3.0,
            inputTokens=500,
            createdAt="2026-01-03T00:00:00Z",
            status="error",
            output=None,
            error={"type": "RateLimitError", "message": "slow down"},
            source="run",
            tags=[],
        ),
        "d": dict(
            promptName="review",
            promptVersion=1,
            cost=0.01,
            duration=0.9,
            inputTokens=50,
            tags=["eu"],
            createdAt="2026-01-04T00:00:00Z",
            output="looks good",
            sessionId="sess-1",
            source="playground",
        ),
    }
    out = {}
    for key, spec in specs.items():
        out[key] = (await app.traces.ingest("default", trace_payload(**spec))).id
    return out


async def test_every_filter(app: App) -> None:
    t = await _seed(app)
    assert set(await ids(app, status="error")) == {t["c"]}
    assert set(await ids(app, prompt_name="support")) == {t["a"], t["b"]}
    assert set(await ids(app, prompt_name="support", prompt_version=2)) == {t["b"]}
    assert set(await ids(app, model="claude-sonnet-4-5")) == {t["b"]}
    assert set(await ids(app, model="anthropic/claude-sonnet-4-5")) == {t["b"]}
    assert set(await ids(app, provider="openai")) == {t["a"], t["c"], t["d"]}
    assert set(await ids(app, tags=["eu"])) == {t["a"], t["d"]}
    assert set(await ids(app, tags=["eu", "prod"])) == {t["a"]}
    assert set(await ids(app, since="2026-01-02T00:00:00Z", until="2026-01-04T00:00:00Z")) == {t["b"], t["c"]}
    assert set(await ids(app, min_cost=0.003)) == {t["a"], t["d"]}
    assert set(await ids(app, min_duration=1.0)) == {t["a"], t["c"]}
    assert set(await ids(app, min_total_tokens=100)) == {t["a"], t["c"]}
    assert set(await ids(app, query="issued")) == {t["a"]}
    assert set(await ids(app, query="slow")) == {t["c"]}  # the error message is searchable
    assert set(await ids(app, query="Acme")) == set(t.values())  # variable values are searchable
    assert set(await ids(app, session_id="sess-1")) == {t["d"]}
    assert set(await ids(app, source="run")) == {t["c"]}
    assert await ids(app, prompt_name="nope") == []


async def test_relative_since(app: App) -> None:
    recent = (await app.traces.ingest("default", trace_payload())).id
    await app.traces.ingest("default", trace_payload(createdAt="2020-01-01T00:00:00Z"))
    assert await ids(app, since="1h") == [recent]


async def test_every_sort_both_orders(app: App) -> None:
    t = await _seed(app)
    assert await ids(app) == [t["d"], t["c"], t["b"], t["a"]]
    assert await ids(app, order="asc") == [t["a"], t["b"], t["c"], t["d"]]
    assert await ids(app, sort="cost") == [t["d"], t["a"], t["b"], t["c"]]  # unknown cost last
    assert await ids(app, sort="cost", order="asc") == [t["c"], t["b"], t["a"], t["d"]]
    assert await ids(app, sort="total_tokens") == [t["c"], t["a"], t["d"], t["b"]]
    assert await ids(app, sort="duration") == [t["c"], t["a"], t["d"], t["b"]]
    assert await ids(app, sort="duration", order="asc") == [t["b"], t["d"], t["a"], t["c"]]


async def test_rows_are_compact(app: App) -> None:
    await app.traces.ingest("default", trace_payload(output="x" * 500))
    (row,) = (await app.traces.list("default", q())).render()["traces"]
    assert set(row) == {
        "id",
        "createdAt",
        "promptName",
        "promptVersion",
        "model",
        "status",
        "totalTokens",
        "cost",
        "duration",
        "tags",
        "outputPreview",
    }
    assert len(row["outputPreview"]) <= 120


@pytest.mark.parametrize("sort", ["created_at", "cost", "total_tokens", "duration"])
async def test_cursor_pages_have_no_duplicates_or_gaps_while_traces_arrive(app: App, sort: str) -> None:
    # Equal sort values on purpose: ties must be broken consistently.
    for i in range(23):
        await app.traces.ingest(
            "default",
            trace_payload(cost=[0.1, 0.2, None][i % 3], duration=float(i % 4), inputTokens=i % 5, output=f"o{i}"),
        )
    before = await ids(app, sort=sort, limit=200)
    seen: list[str] = []
    cursor = None
    while True:
        page = (await app.traces.list("default", q(sort=sort, limit=5, cursor=cursor))).render()
        seen += [r["id"] for r in page["traces"]]
        # New traces arrive between pages; they sort before the cursor (newest) or anywhere by value.
        await app.traces.ingest("default", trace_payload(cost=0.15, duration=1.5, inputTokens=2, output="late"))
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen))
    assert [i for i in seen if i in before] == before


async def test_cursor_of_another_sort_or_garbage_is_a_clear_error(app: App) -> None:
    for _ in range(3):
        await app.traces.ingest("default", trace_payload())
    page = (await app.traces.list("default", q(limit=1))).render()
    with pytest.raises(InvalidArgument, match="sort"):
        await app.traces.list("default", q(limit=1, sort="cost", cursor=page["nextCursor"]))
    with pytest.raises(InvalidArgument, match="cursor"):
        await app.traces.list("default", q(cursor="!!not-a-cursor"))


@pytest.mark.parametrize("bad", ['"unterminated', "AND", "refund AND", "(refund", "NEAR("])
async def test_malformed_full_text_query_is_a_clear_error(app: App, bad: str) -> None:
    await app.traces.ingest("default", trace_payload())
    with pytest.raises(InvalidArgument) as exc:
        await app.traces.list("default", q(query=bad))
    assert "query" in exc.value.message


async def test_full_text_supports_phrases_prefix_and_or(app: App) -> None:
    a = (await app.traces.ingest("default", trace_payload(output="the refund was issued"))).id
    b = (await app.traces.ingest("default", trace_payload(output="refunds are slow", variables={}))).id
    await app.traces.ingest("default", trace_payload(output="unrelated", messages=[], variables={}))
    assert set(await ids(app, query='"refund was"')) == {a}
    assert set(await ids(app, query="refund*")) == {a, b}


async def test_tenants_never_see_each_other(app: App) -> None:
    mine = (await app.traces.ingest("acme", trace_payload(output="acme secret"))).id
    assert (await app.traces.list("globex", q())).render()["traces"] == []
    assert (await app.traces.list("globex", q(query="secret"))).render()["traces"] == []
    assert await app.store.get_trace("globex", mine) is None
    # The same client id may exist in two tenants independently.
    await app.traces.ingest("acme", trace_payload(id="shared"))
    await app.traces.ingest("globex", trace_payload(id="shared", output="other"))
    assert (await app.traces.get("globex", "shared")).output == "other"


async def test_stats_groups(app: App) -> None:
    await _seed(app)
    by_prompt = (await app.traces.stats("default", StatsQuery(group_by="prompt"))).render()
    groups = {g["group"]["promptName"]: g for g in by_prompt["groups"]}
    assert groups["review"]["count"] == 2
    assert groups["review"]["errors"] == 1
    assert groups["review"]["errorRate"] == 0.5
    assert groups["support"]["cost"] == pytest.approx(0.004)
    # Durations are two traces of 0.2 s and 1.5 s: p50 is the lower, p95 the upper (histogram: ±2 %).
    assert groups["support"]["p50Duration"] == pytest.approx(0.2, rel=0.025)
    assert groups["support"]["p95Duration"] == pytest.approx(1.5, rel=0.025)
    by_status = (await app.traces.stats("default", StatsQuery(group_by="status"))).render()
    assert {g["group"]["status"]: g["count"] for g in by_status["groups"]} == {"success": 3, "error": 1}
    windowed = (await app.traces.stats("default", StatsQuery(group_by="model", since="2026-01-03T00:00:00Z"))).render()
    assert sum(g["count"] for g in windowed["groups"]) == 2


async def test_get_trace_fields_and_max_chars(app: App) -> None:
    tid = (await app.traces.ingest("default", trace_payload(output="y" * 300))).id
    data = await app.traces.get_json("default", tid, fields=["output", "cost"], max_chars=10)
    assert set(data) == {"id", "output", "cost"}
    assert data["output"].startswith("y" * 10) and "truncated 290" in data["output"]
    with pytest.raises(InvalidArgument, match="outputs"):
        await app.traces.get_json("default", tid, fields=["outputs"])

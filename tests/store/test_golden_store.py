"""The golden part of the Store protocol on both stores: the case limit (also under racing writers), gates,
replays marked failed only while still running, the call cache and version gates, all scoped to a tenant;
on PostgreSQL also the indexes of migration 6 and a replay finished while the restart check waits for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import psycopg
import pytest

from agnt_traces.errors import PreconditionFailed
from agnt_traces.golden_models import (
    Check,
    CompileContext,
    GatePolicy,
    GateRecord,
    GoldenRecord,
    ModelRef,
    Reference,
    ReplayError,
    ReplayRecord,
)
from agnt_traces.ids import new_id, now_ms
from agnt_traces.models import PromptContent
from agnt_traces.store import Store, open_store

pytestmark = [pytest.mark.anyio, pytest.mark.both_stores]

CONTENT = {
    "blocks": [{"id": "a", "role": "user", "content": "hi"}],
    "model": {"provider": "agnt-local", "name": "echo"},
}
GOLDEN_TABLES = ("golden_cases", "prompt_gates", "replays", "call_cache", "version_gates")


@pytest.fixture
async def store(db_path: str) -> AsyncIterator[Store]:
    s = await open_store(db_path)
    try:
        yield s
    finally:
        await s.close()


def _case(trace_id: str, prompt: str = "support", **fields: Any) -> GoldenRecord:
    now = now_ms()
    return GoldenRecord(
        id=new_id(),
        prompt_name=prompt,
        trace_id=trace_id,
        required=True,
        context=CompileContext(model=ModelRef(provider="agnt-local", name="echo")),
        reference=Reference(output="hi"),
        created_at=now,
        updated_at=now,
        **fields,
    )


def _replay(rid: str, status: str = "running", prompt: str = "support") -> ReplayRecord:
    return ReplayRecord(
        id=rid, prompt_name=prompt, etag="etag-1", status=status, owner="host:1:x", created_at=1, updated_at=now_ms()
    )


NEW = [Check(type="contains", value="new")]


async def test_pin_limit_is_all_or_nothing_and_repins_keep_their_id(store: Store) -> None:
    first = await store.pin_golden("acme", [_case("t1"), _case("t2")], 3)
    again = await store.pin_golden("acme", [_case("t1", checks=NEW)], 3)
    assert again[0].id == first[0].id and again[0].checks == NEW
    with pytest.raises(OverflowError):
        await store.pin_golden("acme", [_case("t3"), _case("t4")], 3)
    assert [c.trace_id for c in await store.list_golden("acme", "support")] == ["t1", "t2"]
    assert (await store.list_golden("acme", "support"))[0].checks == NEW
    assert await store.list_golden("globex", "support") == []
    # another tenant's cases neither count towards nor are touched by this tenant's calls
    await store.pin_golden("globex", [_case("t1"), _case("t2"), _case("t3")], 3)
    assert not await store.update_golden("globex", first[0].model_copy(update={"required": False}))
    assert await store.unpin_golden("globex", "support", [first[0].id, first[1].id]) == []
    assert await store.unpin_golden("acme", "support", []) == []
    assert sorted(await store.unpin_golden("acme", "support", [first[1].id, "nope"])) == [first[1].id]
    assert await store.update_golden("acme", first[0].model_copy(update={"required": False, "updated_at": 7}))
    [left] = await store.list_golden("acme", "support")
    assert (left.id, left.required, left.checks, left.updated_at) == (first[0].id, False, [], 7)


async def test_racing_pins_from_two_processes_never_pass_the_limit(db_path: str) -> None:
    a, b = await open_store(db_path), await open_store(db_path)  # two servers on one database
    outcomes: list[str] = []

    async def pin(s: Store, start: int) -> None:
        try:
            await s.pin_golden("acme", [_case(f"t{start + i}") for i in range(3)], 4)
            outcomes.append("ok")
        except OverflowError:
            outcomes.append("over")

    try:
        for round_ in range(5):
            await a.unpin_golden("acme", "support", [c.id for c in await a.list_golden("acme", "support")])
            with anyio.fail_after(30):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(pin, a, round_ * 10)
                    tg.start_soon(pin, b, round_ * 10 + 5)
            assert len(await a.list_golden("acme", "support")) == 3  # exactly one of the two pins fits
        assert sorted(outcomes) == ["ok"] * 5 + ["over"] * 5
    finally:
        await a.close()
        await b.close()


async def test_gates_say_whether_one_existed(store: Store) -> None:
    assert await store.get_gate("acme", "support") is None
    assert await store.set_gate("acme", "support", GatePolicy(required_pass=True)) is False
    assert await store.set_gate("acme", "support", GatePolicy(required_pass=False, min_pass_rate=0.5)) is True
    assert await store.get_gate("acme", "support") == GatePolicy(required_pass=False, min_pass_rate=0.5)
    assert await store.get_gate("globex", "support") is None
    assert await store.set_gate("globex", "support", None) is False
    assert await store.get_gate("acme", "support") == GatePolicy(required_pass=False, min_pass_rate=0.5)
    assert await store.set_gate("acme", "support", None) is True
    assert await store.get_gate("acme", "support") is None


async def test_replays_are_per_tenant_newest_first_and_only_running_ones_fail(store: Store) -> None:
    ids = [new_id() for _ in range(3)]
    for rid in ids:
        await store.save_replay("acme", _replay(rid))
    await store.save_replay("acme", _replay(ids[0], "passed"))  # an update keeps the row
    await store.save_replay("globex", _replay(ids[1]))
    assert [r.id for r in await store.list_replays("acme", "support")] == ids[::-1]
    assert [r.id for r in await store.list_replays("acme", "support", limit=1)] == ids[2:]
    assert await store.list_replays("acme", "support", etag="other") == []
    seen: list[tuple[str, str]] = []

    def dead(rec: ReplayRecord) -> bool:
        seen.append((rec.id, rec.status))
        return rec.id != ids[2]

    interrupted = ReplayError(code="interrupted", message="stopped")
    assert await store.fail_running_replays(dead, interrupted) == 2  # acme ids[1], globex ids[1]
    assert sorted(seen) == sorted([(ids[1], "running"), (ids[2], "running"), (ids[1], "running")])
    got = {r.id: r for r in await store.list_replays("acme", "support")}
    assert got[ids[0]].status == "passed" and got[ids[0]].error is None
    assert got[ids[1]].status == "error" and got[ids[1]].error == interrupted
    assert got[ids[2]].status == "running"
    assert (await store.get_replay("globex", ids[1])).status == "error"  # type: ignore[union-attr]
    assert await store.get_replay("globex", ids[0]) is None


async def test_call_cache_and_version_gates_are_per_tenant(store: Store) -> None:
    key = bytes(range(32))
    await store.cache_put("acme", key, "trace-1")
    await store.cache_put("acme", key, "trace-2")
    assert await store.cache_get("acme", key) == "trace-2"
    assert await store.cache_get("globex", key) is None
    assert await store.cache_get("acme", bytes(32)) is None

    content = PromptContent.model_validate(CONTENT)
    draft = await store.save_draft("acme", "support", content)
    await store.publish("acme", "support", "production", "v1", gate=GateRecord(override="first"))
    other = PromptContent.model_validate({**CONTENT, "blocks": [{"id": "a", "role": "user", "content": "yo"}]})
    await store.save_draft("acme", "support", other)
    with pytest.raises(PreconditionFailed):  # refused: the gate is not recorded either
        await store.publish(
            "acme", "support", "production", "v2", expected_etag=draft.draft_etag, gate=GateRecord(override="lost")
        )
    assert await store.version_gates("acme", "support") == {1: GateRecord(override="first")}
    await anyio.sleep(0.002)  # the newer record of version 2 must be later by the clock
    await store.publish("acme", "support", "staging", "v2", gate=GateRecord(replay_id="r1"))
    await anyio.sleep(0.002)
    await store.publish("acme", "support", "production", "v2 again", gate=GateRecord(replay_id="r2"))
    assert await store.version_gates("acme", "support") == {
        1: GateRecord(override="first"),
        2: GateRecord(replay_id="r2"),
    }
    await store.publish("acme", "support", "canary", "no gate")
    assert (await store.version_gates("acme", "support"))[2] == GateRecord(replay_id="r2")
    assert await store.version_gates("globex", "support") == {}


# -- PostgreSQL only ----------------------------------------------------------------------------------------


async def test_pg_migration_6_indexes_lead_with_the_tenant(pg_url: str) -> None:
    await (await open_store(pg_url)).close()
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%s)", (list(GOLDEN_TABLES),)
        ).fetchall()
        names = {r[0] for r in rows}
        assert names == set(GOLDEN_TABLES)
        for table, index, definition in rows:
            columns = definition.split("(", 1)[1]
            assert columns.startswith("tenant_id"), (table, index, definition)
        (applied,) = conn.execute("SELECT count(*) FROM schema_migrations WHERE number = 6").fetchone() or (0,)
        assert applied == 1


async def test_pg_a_replay_finished_while_the_restart_check_waits_is_left_alone(pg_url: str) -> None:
    store = await open_store(pg_url)
    try:
        await _finish_while_checking(store, pg_url)
    finally:
        await store.close()


async def _finish_while_checking(store: Store, db_path: str) -> None:
    rid = new_id()
    await store.save_replay("acme", _replay(rid))
    with psycopg.connect(db_path) as other:  # another server finishing the replay, not committed yet
        other.execute("UPDATE replays SET status = 'passed', data = '{\"status\": \"passed\"}' WHERE id = %s", (rid,))
        failed: list[int] = []

        async def check() -> None:
            failed.append(await store.fail_running_replays(lambda r: True, ReplayError(code="interrupted")))

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(check)
                await _wait_for_lock_waiter(db_path)
                other.commit()
    assert failed == [0]
    rec = await store.get_replay("acme", rid)
    assert rec is not None and rec.status == "passed" and rec.error is None


async def _wait_for_lock_waiter(db_path: str) -> None:
    with psycopg.connect(db_path, autocommit=True) as probe:
        for _ in range(1000):  # another process's state: polled (fail_after bounds the wait)
            if probe.execute(
                "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%replays%'"
            ).fetchone():
                return
            await anyio.sleep(0.02)
    raise AssertionError("the restart check never waited for the replay's row lock")

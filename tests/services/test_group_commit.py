"""Group commit of single-trace ingest (services.group_commit, used by TraceService.ingest for REST, MCP over
HTTP and MCP over stdio): concurrent traces share one transaction, and when that shared write fails each
trace is written again alone, so that every caller gets exactly the answer it would have got alone."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

from agnt_traces.app import App
from agnt_traces.errors import Conflict
from agnt_traces.ingest_records import IngestResult, TraceRecord
from agnt_traces.services.group_commit import GroupCommit
from agnt_traces.services.queries import TraceQuery
from factories import trace_payload

pytestmark = pytest.mark.anyio


def spy_on_writes(app: App) -> list[list[str]]:
    """The ids of every ``insert_traces`` call the store gets, in order."""
    calls: list[list[str]] = []
    insert = app.store.insert_traces

    async def spying(tenant: str, records: list[TraceRecord]) -> list[IngestResult]:
        calls.append([r.trace.id for r in records])
        return await insert(tenant, records)

    app.store.insert_traces = spying  # type: ignore[method-assign]
    return calls


async def ingest_together(app: App, payloads: list[dict[str, Any]]) -> list[Any]:
    """Ingest every payload concurrently; each outcome (result or error) at its payload's index."""
    outcomes: list[Any] = [None] * len(payloads)

    async def one(i: int) -> None:
        try:
            outcomes[i] = await app.traces.ingest("default", payloads[i])
        except Conflict as exc:
            outcomes[i] = exc

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for i in range(len(payloads)):
                tg.start_soon(one, i)
    return outcomes


async def stored_ids(app: App) -> set[str]:
    page = await app.traces.list("default", TraceQuery(limit=200))
    return {row.id for row in page.traces}


async def test_concurrent_traces_share_one_transaction_and_each_gets_its_own_answer(app: App) -> None:
    calls = spy_on_writes(app)
    outcomes = await ingest_together(app, [trace_payload(id=f"t{i}", output=f"answer {i}") for i in range(6)])
    assert [o.render() for o in outcomes] == [{"id": f"t{i}", "created": True} for i in range(6)]
    assert calls == [[f"t{i}" for i in range(6)]]  # one write for all six
    assert await stored_ids(app) == {f"t{i}" for i in range(6)}


async def test_a_failed_group_is_written_again_one_by_one_and_only_the_conflict_is_refused(app: App) -> None:
    await app.traces.ingest("default", trace_payload(id="taken", output="the first content"))
    calls = spy_on_writes(app)
    payloads = [
        trace_payload(id="a", output="fresh a"),
        trace_payload(id="taken", output="other content: a conflict"),
        trace_payload(id="b", output="fresh b"),
        trace_payload(id="c", output="fresh c"),
    ]
    outcomes = await ingest_together(app, payloads)

    assert outcomes[0].render() == {"id": "a", "created": True}
    assert isinstance(outcomes[1], Conflict) and outcomes[1].details == {"id": "taken"}
    assert outcomes[2].render() == {"id": "b", "created": True}
    assert outcomes[3].render() == {"id": "c", "created": True}
    # The group (all or nothing) failed on the conflict, then each trace was written alone.
    assert calls == [["a", "taken", "b", "c"], ["a"], ["taken"], ["b"], ["c"]]
    assert await stored_ids(app) == {"taken", "a", "b", "c"}
    assert (await app.traces.get("default", "taken")).output == "the first content"


async def test_a_resent_trace_in_a_group_is_a_no_op_for_its_caller_only(app: App) -> None:
    await app.traces.ingest("default", trace_payload(id="again", output="same"))
    outcomes = await ingest_together(
        app, [trace_payload(id="again", output="same"), trace_payload(id="new", output="new one")]
    )
    assert [o.render() for o in outcomes] == [{"id": "again", "created": False}, {"id": "new", "created": True}]


async def test_an_unexpected_store_failure_reaches_only_the_caller_whose_trace_fails_alone() -> None:
    """A grouped write failing for any reason (not only a conflict) falls back to one write per record."""
    calls: list[list[str]] = []

    async def write(tenant: str, records: list[TraceRecord]) -> list[IngestResult]:
        calls.append([r.trace.id for r in records])
        if any(r.trace.id == "broken" for r in records):
            raise RuntimeError("the disk said no")
        return [IngestResult(r.trace.id, created=True) for r in records]

    from agnt_traces.services.traces import TraceService

    prepare = TraceService(None).prepare  # type: ignore[arg-type]  # validation only
    group = GroupCommit(write)
    results: dict[str, Any] = {}

    async def submit(trace_id: str) -> None:
        try:
            results[trace_id] = await group.submit("default", prepare(trace_payload(id=trace_id)))
        except RuntimeError as exc:
            results[trace_id] = exc

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for trace_id in ("x", "broken", "y"):
                tg.start_soon(submit, trace_id)
    assert results["x"] == IngestResult("x", created=True)
    assert results["y"] == IngestResult("y", created=True)
    assert isinstance(results["broken"], RuntimeError)
    assert calls == [["x", "broken", "y"], ["x"], ["broken"], ["y"]]


async def test_one_trace_alone_is_written_at_once_without_waiting_for_company(app: App) -> None:
    calls = spy_on_writes(app)
    with anyio.fail_after(10):
        result = await app.traces.ingest("default", trace_payload(id="solo"))
    assert result.render() == {"id": "solo", "created": True}
    assert calls == [["solo"]]


def recording_group(**options: Any) -> tuple[GroupCommit, list[list[str]], Callable[..., Awaitable[None]]]:
    """A GroupCommit whose writes only record the ids of each call, those calls, and ``submit(trace_id,
    turns_late=0)``: a valid trace submitted that many loop turns late."""
    from agnt_traces.services.traces import TraceService

    prepare = TraceService(None).prepare  # type: ignore[arg-type]  # validation only
    calls: list[list[str]] = []

    async def write(tenant: str, records: list[TraceRecord]) -> list[IngestResult]:
        calls.append([r.trace.id for r in records])
        return [IngestResult(r.trace.id, created=True) for r in records]

    group = GroupCommit(write, **options)

    async def submit(trace_id: str, turns_late: int = 0) -> None:
        for _ in range(turns_late):
            await anyio.lowlevel.checkpoint()
        await group.submit("default", prepare(trace_payload(id=trace_id)))

    return group, calls, submit


async def test_the_gathering_widens_once_writes_are_shared_and_narrows_when_they_are_not() -> None:
    """One loop turn of waiting for company while writes go one at a time (an agent's calls cost no more than
    that), a few once a write was shared: a caller a few turns behind joins the write then, not before."""
    _, calls, submit = recording_group(gather_rounds=12)

    async def pair(first: str, second: str) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(submit, first)
            tg.start_soon(submit, second, 4)  # four turns behind the first

    with anyio.fail_after(10):
        await submit("alone")
        await pair("a1", "a2")  # after a write alone: one turn, so a2 misses a1's write
        async with anyio.create_task_group() as tg:  # two at once: one shared write
            tg.start_soon(submit, "b1")
            tg.start_soon(submit, "b2")
        await pair("c1", "c2")  # after a shared write: c2 catches up with c1's
        await submit("d1")
        await submit("d2")  # alone again: no wait for company
        await pair("e1", "e2")
    assert calls == [["alone"], ["a1"], ["a2"], ["b1", "b2"], ["c1", "c2"], ["d1"], ["d2"], ["e1"], ["e2"]]


async def test_a_burst_that_arrives_spread_over_many_turns_shares_one_write() -> None:
    """Over stdio the requests of one burst reach the queue tens of turns apart (each takes several turns
    through the transport, and the client sends each next one as it reads an answer): while writes are shared,
    the gathering waits for them as long as they keep coming, instead of a fixed few turns."""
    _, calls, submit = recording_group()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:  # a shared write: more are likely on their way
            tg.start_soon(submit, "a1")
            tg.start_soon(submit, "a2")
        async with anyio.create_task_group() as tg:
            for i in range(6):
                tg.start_soon(submit, f"b{i}", 40 * i)  # 40 turns apart: 200 turns from first to last
    assert calls == [["a1", "a2"], [f"b{i}" for i in range(6)]]


async def test_the_gathering_ends_in_milliseconds_when_other_work_makes_every_turn_long() -> None:
    """Turns that other work makes long (here 2 ms each) would make a gathering counted in turns last
    hundreds of milliseconds: it ends after ``max_quiet_seconds`` without a new record, within
    ``max_gather_seconds`` in all, and the callers are answered then."""
    import time

    from agnt_traces.services.traces import TraceService

    prepare = TraceService(None).prepare  # type: ignore[arg-type]  # validation only
    written_at: list[float] = []

    async def write(tenant: str, records: list[TraceRecord]) -> list[IngestResult]:
        written_at.append(time.monotonic())
        return [IngestResult(r.trace.id, created=True) for r in records]

    group = GroupCommit(write)
    busy = True

    async def other_work() -> None:
        while busy:
            time.sleep(0.002)  # noqa: ASYNC251  # blocking on purpose: a request's synchronous work, 2 ms a turn
            await anyio.lowlevel.checkpoint()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(other_work)
            async with anyio.create_task_group() as callers:  # shared writes: the gathering is on
                callers.start_soon(group.submit, "default", prepare(trace_payload(id="warm1")))
                callers.start_soon(group.submit, "default", prepare(trace_payload(id="warm2")))
            written_at.clear()
            started = time.monotonic()
            async with anyio.create_task_group() as callers:
                callers.start_soon(group.submit, "default", prepare(trace_payload(id="c1")))
                callers.start_soon(group.submit, "default", prepare(trace_payload(id="c2")))
            busy = False
    assert len(written_at) == 1
    # 96 quiet turns of 2 ms would be 192 ms; the gathering stops after 3 ms without a new record (a turn or
    # two past it), and the write follows: far below, even on a loaded machine.
    assert written_at[0] - started < 0.06

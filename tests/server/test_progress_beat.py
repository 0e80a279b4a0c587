"""Heartbeats while a long tool call runs, and none (no task either) for a call that ends quickly."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest

from agnt_traces.server.progress import ProgressBeat

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the server runs on asyncio


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[float, float | None, str]] = []
        self.arrived = asyncio.Event()

    async def report_progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        self.sent.append((progress, total, message or ""))
        self.arrived.set()


async def test_a_long_call_gets_increasing_heartbeats_until_it_ends() -> None:
    ctx = Recorder()
    beat = ProgressBeat(ctx, interval=0.05)
    with anyio.fail_after(10):
        async with beat.running():
            while len(ctx.sent) < 3:
                ctx.arrived.clear()
                await ctx.arrived.wait()
            await beat.report(1, 2, "half")
            ctx.arrived.clear()
            await ctx.arrived.wait()
    count = len(ctx.sent)
    await asyncio.sleep(0.15)
    assert len(ctx.sent) == count, "no heartbeat after the body ended"
    values = [value for value, _, _ in ctx.sent]
    assert values == sorted(values) and len(set(values)) == len(values)
    assert ctx.sent[0][2].startswith("still running: 0 done after")
    assert any(message == "half" for _, _, message in ctx.sent)
    assert ctx.sent[-1][1] == 2 and ctx.sent[-1][2].startswith("still running: 1 of 2 done")


async def test_a_quick_call_sends_nothing_and_starts_no_task() -> None:
    ctx = Recorder()
    before = len(asyncio.all_tasks())
    async with ProgressBeat(ctx, interval=0.05).running():
        assert len(asyncio.all_tasks()) == before
    await asyncio.sleep(0.15)
    assert ctx.sent == []
    assert len(asyncio.all_tasks()) == before


async def test_an_error_of_the_body_reaches_the_caller_as_itself() -> None:
    ctx: Any = Recorder()
    with pytest.raises(KeyError):
        async with ProgressBeat(ctx, interval=0.01).running():
            await asyncio.sleep(0.05)
            raise KeyError("x")
    await asyncio.sleep(0.05)
    count = len(ctx.sent)
    await asyncio.sleep(0.05)
    assert len(ctx.sent) == count

"""Single-trace POSTs in flight together share one transaction (group commit, in services.group_commit), and
when that shared write fails — one of them conflicts with a stored trace — each is written again alone:
every request gets exactly the answer it would have got alone (201, or 409 for the conflicting one)."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest

from agnt_traces.config import Settings
from agnt_traces.ingest_records import IngestResult, TraceRecord
from factories import trace_payload
from http_helpers import check_error_body, in_process

pytestmark = pytest.mark.anyio


async def test_concurrent_posts_share_a_write_and_a_conflict_is_answered_alone(settings: Settings) -> None:
    async with in_process(settings, "acme") as env:
        first = await env.request("acme", "POST", "/traces", json=trace_payload(id="taken", output="first"))
        assert first.status_code == 201

        calls: list[list[str]] = []
        insert = env.app.store.insert_traces

        async def spying(tenant: str, records: list[TraceRecord]) -> list[IngestResult]:
            calls.append([r.trace.id for r in records])
            return await insert(tenant, records)

        env.app.store.insert_traces = spying  # type: ignore[method-assign]
        bodies: list[dict[str, Any]] = [
            trace_payload(id="p1", output="one"),
            trace_payload(id="taken", output="other content"),
            trace_payload(id="p2", output="two"),
        ]
        with anyio.fail_after(30):
            replies = await asyncio.gather(*(env.request("acme", "POST", "/traces", json=b) for b in bodies))

        assert [r.status_code for r in replies] == [201, 409, 201]
        assert replies[0].json() == {"id": "p1", "created": True}
        assert replies[2].json() == {"id": "p2", "created": True}
        assert check_error_body(replies[1].json())["code"] == "conflict"
        # The shared write (all or nothing) holding the conflicting trace failed; then each of its traces was
        # written alone. (Normally all three share the first write.)
        failed = [c for c in calls if len(c) > 1 and "taken" in c]
        assert failed, calls
        alone = [c[0] for c in calls if len(c) == 1]
        assert all(trace_id in alone for c in failed for trace_id in c), calls

        got = await env.request("acme", "GET", "/traces/taken")
        assert got.json()["output"] == "first"  # never overwritten
        for trace_id in ("p1", "p2"):
            assert (await env.request("acme", "GET", f"/traces/{trace_id}")).status_code == 200

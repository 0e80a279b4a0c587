"""The typed session: old documents load, runCount is never stored, a mutation does not read the runs."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest

from agnt_traces.app import App
from agnt_traces.models import Trace
from agnt_traces.store import codec

pytestmark = [pytest.mark.anyio, pytest.mark.both_stores]

ECHO = {"provider": "agnt-local", "name": "echo", "params": {}}


async def session_with_runs(app: App, runs: int) -> str:
    content = {
        "blocks": [{"id": "q", "role": "user", "content": "Order {{ order }}"}],
        "variables": [{"name": "order", "type": "integer", "required": True}],
        "model": ECHO,
    }
    await app.prompts.upsert("default", "support", content)
    await app.prompts.publish("default", "support")
    trace = (await app.prompts.run("default", "support", variables={"order": 1}))["trace"]
    sid = (await app.playground.open("default", trace["id"])).id
    for _ in range(runs):
        await app.playground.run("default", sid, fresh=True)
    return sid


class Counts:
    def __init__(self) -> None:
        self.traces = 0
        self.bodies = 0
        self.run_reads = 0


@pytest.fixture
def counts(app: App, monkeypatch: pytest.MonkeyPatch) -> Counts:
    """Counts Trace objects built, trace bodies decompressed and run lists read from the store."""
    seen = Counts()
    init, decompress, session_runs = Trace.__init__, codec._decompress, app.store.session_runs

    def counting_init(self: Trace, **data: Any) -> None:
        seen.traces += 1
        init(self, **data)

    def counting_decompress(blob: bytes) -> dict[str, Any]:
        seen.bodies += 1
        return decompress(blob)

    async def counting_runs(tenant: str, session_id: str) -> Any:
        seen.run_reads += 1
        return await session_runs(tenant, session_id)

    monkeypatch.setattr(Trace, "__init__", counting_init)
    monkeypatch.setattr(codec, "_decompress", counting_decompress)
    monkeypatch.setattr(app.store, "session_runs", counting_runs)
    return seen


async def test_edit_block_on_a_session_with_22_runs_builds_no_trace(app: App, counts: Counts) -> None:
    sid = await session_with_runs(app, 22)
    before = counts.__dict__.copy()
    view = await app.playground.edit_block("default", sid, "q", content="Order {{ order }}, please")
    assert view.blocks[0].content == "Order {{ order }}, please"
    assert len(view.runs) == 22  # the answer still lists them (clients see the same JSON) …
    assert counts.traces == before["traces"]  # … but no Trace is built for that
    assert counts.run_reads == before["run_reads"] + 1  # the run list is read once, for the answer
    assert counts.bodies - before["bodies"] <= 22 + 1  # one body per run, one manifest (not 45 loads)
    # A mutation alone (what saving to a golden replay reads) never touches the runs.
    reads = counts.run_reads
    assert (await app.playground.content_to_save("default", sid))[0] == "support"
    await app.playground.save("default", sid)
    assert counts.run_reads == reads and counts.traces == before["traces"]


async def test_list_sessions_counts_runs_without_storing_the_count(app: App, db_path: str, store_kind: str) -> None:
    sid = await session_with_runs(app, 2)
    listed = (await app.playground.list("default")).render()
    assert listed["sessions"][0]["runCount"] == 2
    await app.playground.edit_block("default", sid, "q", content="x {{ order }}")
    await app.playground.list("default")
    await app.playground.update_variables("default", sid, {"order": 3})
    rec = await app.store.get_session("default", sid)
    assert rec is not None
    stored = json.loads(rec.session.to_json())
    assert "runCount" not in stored and stored["values"] == {"order": 3}


@pytest.mark.sqlite_only
async def test_a_document_in_todays_stored_format_loads_and_edits(app: App, db_path: str) -> None:
    sid = await session_with_runs(app, 1)
    # What databases hold today, written by hand: camelCase keys, content as canonical JSON, problems as
    # [kind, text] pairs, a stray runCount.
    document = {
        "promptName": "support",
        "literal": False,
        "baseEtag": "e" * 64,
        "baseVersion": 1,
        "baseRevision": 2,
        "content": {
            "blocks": [{"id": "q", "role": "user", "content": "Order {{ order }}", "condition": None}],
            "variables": [{"name": "order", "type": "integer", "required": True, "default": None, "description": ""}],
            "model": ECHO,
            "tools": [],
        },
        "values": {"order": 9},
        "models": [ECHO],
        "inputMessages": [{"role": "user", "content": "hi"}],
        "notes": ["a note"],
        "replayIssues": [["content", "the trace's content is unknown"]],
        "runCount": 7,
    }
    with sqlite3.connect(db_path) as db:
        db.execute("UPDATE sessions SET data = ? WHERE id = ?", (json.dumps(document), sid))
    view = (await app.playground.get("default", sid)).render()
    assert view["baseEtag"] == "e" * 64 and view["baseRevision"] == 2 and view["notes"] == ["a note"]
    assert view["variables"]["values"] == {"order": 9} and view["inputMessages"] == [{"role": "user", "content": "hi"}]
    assert view["replayable"] is False and view["replayIssues"] == ["the trace's content is unknown"]
    assert len(view["runs"]) == 1
    edited = (await app.playground.edit_block("default", sid, "q", content="Order {{ order }}!")).render()
    assert edited["replayable"] is True and edited["notes"] == ["a note"]
    with sqlite3.connect(db_path) as db:
        stored = json.loads(db.execute("SELECT data FROM sessions WHERE id = ?", (sid,)).fetchone()[0])
    assert "runCount" not in stored and "replayIssues" not in stored
    assert stored["notes"] == ["a note"] and stored["baseEtag"] == "e" * 64

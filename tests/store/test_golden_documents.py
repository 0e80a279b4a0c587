"""Golden cases, replays, gates and version gate records written before they were typed stay readable: each
document below has the exact shape the untyped code stored. It is put into the row with plain SQL, read through
the store as a typed record, written back through the store, and must come out as the same JSON document."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest

from agnt_traces.golden_models import (
    CompileContext,
    GatePolicy,
    GateRecord,
    GoldenRecord,
    ModelRef,
    Reference,
    ReplayRecord,
)
from agnt_traces.ids import new_id, now_ms
from agnt_traces.models import PromptContent
from agnt_traces.store import Store, open_store

pytestmark = [pytest.mark.anyio, pytest.mark.both_stores]

ETAG = "ab" * 32
CASE_DOC: dict[str, Any] = {
    "required": True,
    "checks": [
        {"type": "contains", "value": "Kind regards"},
        {"type": "regex", "value": "^echo"},
        {"type": "json", "value": True},
        {"type": "json_schema", "value": {"type": "object", "required": ["a"]}},
        {"type": "max_tokens", "value": 40},
        {"type": "max_cost", "value": 1.0},
        {"type": "max_duration", "value": 2.5},
    ],
    "judge": {
        "rubric": "is polite",
        "model": {"provider": "openai", "name": "gpt-4o-mini", "params": {"temperature": 0.2}},
    },
    "context": {
        "variables": {"company": "Acme", "n": 3},
        "inputMessages": [{"role": "user", "content": "hi"}],
        "model": {"provider": "openai", "name": "gpt-4o-mini", "params": {}},
        "etag": ETAG,
        "version": 1,
        "contentKnown": True,
    },
    "reference": {
        "output": "echo: hi",
        "toolCalls": [],
        "status": "success",
        "inputTokens": 24,
        "outputTokens": 9,
        "totalTokens": 33,
        "cost": 9.6e-06,
        "duration": 0.152179,
        "model": "openai/gpt-4o-mini",
    },
}
SUMMARY: dict[str, Any] = {
    "cases": 1,
    "passed": 0,
    "failed": 1,
    "regressions": 1,
    "improvements": 0,
    "flaky": 1,
    "requiredFailed": 1,
    "passRate": 0.0,
    "cached": 0,
    "modelCalls": 2,
    "cost": 4.56e-05,
    "tokens": 136,
    "costDelta": -0.40625,
    "p95Duration": 0.0589,
    "p95Delta": -0.613,
    "baseline": {"costPerCall": 9.6e-06, "p95Duration": 0.152179},
    "stopped": "budget",
}
REPLAY_DOC: dict[str, Any] = {
    "against": "draft",
    "version": None,
    "etag": ETAG,
    "models": ["openai/gpt-4o-mini"],
    "trials": 2,
    "fresh": False,
    "caseIds": ["c1"],
    "allCases": True,
    "budget": {"limitUsd": 10.0, "limitTokens": 5000000, "spentUsd": 4.56e-05, "spentTokens": 136},
    "progress": {"done": 2, "total": 2},
    "status": "error",
    "summary": SUMMARY,
    "cases": [
        {
            "caseId": "c1",
            "goldenTraceId": "t1",
            "traceId": "t2",
            "model": "openai/gpt-4o-mini",
            "status": "failed",
            "required": True,
            "baselinePassed": True,
            "regression": True,
            "improvement": False,
            "flaky": True,
            "cached": False,
            "checks": [{"type": "contains", "passed": False, "detail": "'Kind regards' not in the output"}],
            "diff": {
                "changed": True,
                "unified": "--- a/output/c1\n+++ b/output/c1\n",
                "summary": [{"path": "output/c1", "added": 1, "removed": 1}],
                "truncated": {"omittedFiles": [], "omittedChars": 10, "hint": "raise max_chars"},
            },
            "deltas": {"inputTokens": -10, "outputTokens": -4, "totalTokens": -14, "cost": -3.9e-06, "duration": None},
            "trials": [
                {"traceId": "t2", "passed": False, "cached": False},
                {"traceId": "t3", "passed": True, "cached": False},
            ],
        }
    ],
    "gate": {
        "policy": {
            "required_pass": True,
            "no_regressions": True,
            "min_pass_rate": 0.5,
            "max_cost_increase": 2.0,
            "max_p95_increase": None,
        },
        "gated": True,
        "passed": False,
        "failures": ["the replay did not finish (budget)"],
    },
    "error": {
        "code": "invalid_argument",
        "message": "the replay stopped before a call that would have crossed its budget",
        "details": {"field": "budget_usd", "limitUsd": 10.0},
    },
    "finishedAt": "2026-11-30T08:38:27.531Z",
}
RUNNING_DOC: dict[str, Any] = {
    key: REPLAY_DOC[key]
    for key in ("against", "version", "etag", "models", "trials", "fresh", "caseIds", "allCases", "budget", "progress")
} | {"status": "running"}
POLICY_DOC = {
    "required_pass": False,
    "no_regressions": True,
    "min_pass_rate": None,
    "max_cost_increase": 0.1,
    "max_p95_increase": None,
}
OVERRIDE_DOC = {"override": "hotfix approved", "draftEtag": ETAG, "at": "2026-11-30T08:38:27.531Z"}
PASSED_DOC = {"replayId": "r1", "summary": {k: v for k, v in SUMMARY.items() if k != "stopped"}, "draftEtag": ETAG}


@pytest.fixture
async def store(db_path: str) -> AsyncIterator[Store]:
    s = await open_store(db_path)
    try:
        yield s
    finally:
        await s.close()


def _sql(db_path: str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one statement on the database itself (not through the store)."""
    if db_path.startswith("postgresql://"):
        with psycopg.connect(db_path) as conn:
            cur = conn.execute(statement.replace("?", "%s"), params)
            return list(cur.fetchall()) if cur.description else []
    with sqlite3.connect(db_path) as db:
        return db.execute(statement, params).fetchall()


def _doc(db_path: str, table: str, column: str, where: str, params: tuple[Any, ...]) -> Any:
    [(text,)] = _sql(db_path, f"SELECT {column} FROM {table} WHERE {where}", params)
    return json.loads(text)


async def test_a_golden_case_document_reads_typed_and_writes_back_unchanged(store: Store, db_path: str) -> None:
    now = now_ms()
    placeholder = GoldenRecord(
        id=new_id(),
        prompt_name="support",
        trace_id="t1",
        context=CompileContext(model=ModelRef(provider="x", name="y")),
        reference=Reference(),
        created_at=now,
        updated_at=now,
    )
    [stored] = await store.pin_golden("acme", [placeholder], 10)
    _sql(db_path, "UPDATE golden_cases SET data = ? WHERE id = ?", (json.dumps(CASE_DOC), stored.id))

    [case] = await store.list_golden("acme", "support")
    assert case.required is True
    assert [c.type for c in case.checks][:3] == ["contains", "regex", "json"]
    assert case.checks[2].value is True and case.checks[4].value == 40 and case.checks[5].value == 1.0
    assert case.judge is not None and case.judge.model.params == {"temperature": 0.2}
    assert case.context.input_messages == [{"role": "user", "content": "hi"}] and case.context.content_known
    assert case.reference.output_tokens == 9 and case.reference.model == "openai/gpt-4o-mini"

    assert await store.update_golden("acme", case)
    assert _doc(db_path, "golden_cases", "data", "id = ?", (case.id,)) == CASE_DOC


@pytest.mark.parametrize("document", [REPLAY_DOC, RUNNING_DOC], ids=["finished", "running"])
async def test_a_replay_document_reads_typed_and_writes_back_unchanged(
    store: Store, db_path: str, document: dict[str, Any]
) -> None:
    rid = new_id()
    await store.save_replay(
        "acme",
        ReplayRecord(
            id=rid, prompt_name="support", etag=ETAG, status="running", owner="h:1:x", created_at=1, updated_at=2
        ),
    )
    _sql(
        db_path,
        "UPDATE replays SET data = ?, status = ? WHERE id = ?",
        (json.dumps(document), document["status"], rid),
    )

    rec = await store.get_replay("acme", rid)
    assert rec is not None and rec.status == document["status"] and rec.case_ids == ["c1"]
    assert rec.progress is not None and rec.progress.total == 2
    if document is REPLAY_DOC:
        assert rec.summary is not None and rec.summary.stopped == "budget" and rec.summary.required_failed == 1
        assert rec.cases is not None and rec.cases[0].trials is not None and rec.cases[0].diff.truncated
        assert rec.gate is not None and rec.gate.policy.min_pass_rate == 0.5
        assert rec.error is not None and rec.error.details == {"field": "budget_usd", "limitUsd": 10.0}
    else:
        assert rec.summary is None and rec.cases is None and rec.gate is None and rec.error is None

    await store.save_replay("acme", rec)
    assert _doc(db_path, "replays", "data", "id = ?", (rid,)) == document


async def test_gate_policies_and_version_gate_records_read_typed_and_write_back_unchanged(
    store: Store, db_path: str
) -> None:
    await store.set_gate("acme", "support", GatePolicy())
    _sql(db_path, "UPDATE prompt_gates SET policy = ?", (json.dumps(POLICY_DOC),))
    policy = await store.get_gate("acme", "support")
    assert policy == GatePolicy(required_pass=False, max_cost_increase=0.1)
    await store.set_gate("acme", "support", policy)
    assert _doc(db_path, "prompt_gates", "policy", "prompt_name = ?", ("support",)) == POLICY_DOC

    await store.save_draft("acme", "support", PromptContent.model_validate({"model": {"provider": "p", "name": "m"}}))
    await store.publish("acme", "support", "production", "v1", gate=GateRecord(override="x"))
    _sql(db_path, "UPDATE version_gates SET data = ?", (json.dumps(OVERRIDE_DOC),))
    override = (await store.version_gates("acme", "support"))[1]
    assert override.override == "hotfix approved" and override.replay_id is None and override.summary is None
    assert override.render() == OVERRIDE_DOC

    await store.publish("acme", "support", "staging", "again", gate=GateRecord(override="y"))
    _sql(db_path, "UPDATE version_gates SET data = ?", (json.dumps(PASSED_DOC),))
    passed = (await store.version_gates("acme", "support"))[1]
    assert passed.replay_id == "r1" and passed.summary is not None and passed.summary.stopped is None
    assert passed.render() == PASSED_DOC
    await store.publish("acme", "support", "canary", "third", gate=passed)
    rows = _sql(db_path, "SELECT data FROM version_gates ORDER BY created_at")
    assert json.loads(rows[-1][0]) == PASSED_DOC

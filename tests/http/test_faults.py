"""Faults that must be reported as what they are, never lose acknowledged work, never become an opaque 500:
a model reporting absurd usage, the database file deleted while serving, a full disk, a bad prompts folder."""

from __future__ import annotations

import math
import os
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from agnt_traces.app import App
from agnt_traces.config import Settings
from agnt_traces.services.runner import checked_usage
from factories import make_token, trace_payload
from http_helpers import check_error_body, in_process
from live_http import Reply, Rest, live_server
from modelserver import ModelServer, expected_usage

pytestmark = pytest.mark.anyio

TENANT = "acme"


# -- absurd usage from the model ------------------------------------------------------------------------


def prompt(server: ModelServer) -> dict[str, Any]:
    return {
        "blocks": [{"id": "ask", "role": "user", "content": "how are refunds issued"}],
        "model": {"provider": "openai", "name": "gpt-4o-mini", "params": {"api_base": server.openai_base}},
    }


@pytest.mark.parametrize(
    ("reported", "refused"),
    [
        ({"prompt_tokens": -5}, {"inputTokens", "cost"}),
        ({"prompt_tokens": 10**30}, {"inputTokens", "cost"}),
        ({"completion_tokens": -1, "total_tokens": -7}, {"outputTokens", "totalTokens", "cost"}),
        ({"total_tokens": -1}, {"totalTokens"}),
    ],
)
async def test_absurd_usage_is_recorded_refused_and_flagged(
    settings: Settings, model_server: ModelServer, reported: dict[str, Any], refused: set[str]
) -> None:
    model_server.usage_override = reported
    async with in_process(settings, TENANT) as env:
        put = await env.request(TENANT, "PUT", "/prompts/p", json={"content": prompt(model_server)})
        assert put.status_code == 200
        with anyio.fail_after(30):
            ran = await env.request(TENANT, "POST", "/prompts/p/run", json={"label": "draft"})
        assert ran.status_code == 200, ran.text  # today: 500 and no trace for 10^30
        trace = ran.json()["trace"]
        (req,) = model_server.requests
        true_in, true_out = expected_usage(req.body)
        flagged = trace["metadata"]["invalidUsage"]
        assert set(flagged) == refused
        for field in ("inputTokens", "outputTokens", "totalTokens"):
            assert isinstance(trace[field], int) and 0 <= trace[field] <= 10**12, (field, trace[field])
        if "inputTokens" in refused:
            assert trace["inputTokens"] == 0 and flagged["inputTokens"] == repr(reported["prompt_tokens"])[:40]
        else:
            assert trace["inputTokens"] == true_in
        if "outputTokens" not in refused:
            assert trace["outputTokens"] == true_out
        if "cost" in refused:
            assert trace["cost"] is None  # a cost computed from refused counts is unknown, not a number
        else:
            assert trace["cost"] is not None and trace["cost"] > 0
        # Recorded, and readable back as it was returned.
        stored = await env.request(TENANT, "GET", f"/traces/{trace['id']}")
        assert stored.status_code == 200 and stored.json() == trace
        stats = await env.request(TENANT, "GET", "/stats")
        assert stats.status_code == 200
        (group,) = stats.json()["groups"]
        assert group["count"] == 1 and group["inputTokens"] >= 0 and group["totalTokens"] >= 0


def test_checked_usage_refuses_each_kind_of_absurd_number() -> None:
    ok = checked_usage(10, 5, 15, 0.25)
    assert (ok.input_tokens, ok.output_tokens, ok.total_tokens, ok.cost, ok.invalid) == (10, 5, 15, 0.25, {})
    for cost in (math.nan, math.inf, -0.01, 1e7, "12", True):
        got = checked_usage(10, 5, 15, cost)
        assert got.cost is None and set(got.invalid) == {"cost"}, cost
    for tokens in (-1, 10**13, 2.5, math.nan, "7", None, True):
        got = checked_usage(tokens, 5, 15, 0.1)
        assert got.input_tokens == 0 and got.cost is None and {"inputTokens", "cost"} <= set(got.invalid), tokens
    assert checked_usage(10, 5, None, None).total_tokens == 15  # a missing total is derived, and flagged
    assert checked_usage(10.0, 5, 15, None).invalid == {}  # a whole float count is a count
    assert checked_usage(10, 5, 3, None).total_tokens == 15  # a total below its parts is refused


async def test_absurd_usage_through_the_service_never_raises(app: App, model_server: ModelServer) -> None:
    model_server.usage_override = {"prompt_tokens": 10**30, "completion_tokens": -3, "total_tokens": 10**40}
    await app.prompts.upsert("default", "p", prompt(model_server))
    with anyio.fail_after(30):
        result = await app.prompts.run("default", "p", label="draft")
    trace = result["trace"]
    assert (trace["inputTokens"], trace["outputTokens"], trace["cost"]) == (0, 0, None)
    assert set(trace["metadata"]["invalidUsage"]) == {"inputTokens", "outputTokens", "totalTokens", "cost"}
    assert (await app.traces.get("default", trace["id"])).to_json() == trace
    assert "Traceback" not in str(result)


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydantic warns inside LiteLLM; in production it only warns
async def test_unparseable_usage_is_a_model_error_without_a_traceback(
    settings: Settings, model_server: ModelServer
) -> None:
    """Usage LiteLLM itself cannot read (NaN) fails the call: recorded as an error trace, answered as
    model_error, and LiteLLM's traceback never reaches the client or the trace."""
    model_server.usage_override = {"prompt_tokens": math.nan}
    async with in_process(settings, TENANT) as env:
        await env.request(TENANT, "PUT", "/prompts/p", json={"content": prompt(model_server)})
        with anyio.fail_after(60):
            ran = await env.request(TENANT, "POST", "/prompts/p/run", json={"label": "draft"})
        assert ran.status_code == 502
        err = check_error_body(ran.json())
        assert err["code"] == "model_error"
        trace = (await env.request(TENANT, "GET", f"/traces/{err['details']['traceId']}")).json()
        assert trace["status"] == "error" and "Traceback" not in trace["error"]["message"]
        assert "site-packages" not in trace["error"]["message"]


# -- the database file deleted while serving ------------------------------------------------------------


def ingest(rest: Rest, n: int, prefix: str) -> list[Reply]:
    return [rest.call("POST", "/traces", trace_payload(id=f"{prefix}-{i}")) for i in range(n)]


@pytest.mark.parametrize("how", ["deleted", "replaced"])
async def test_database_file_gone_is_reported_and_writes_are_refused(settings: Settings, how: str) -> None:
    token = await make_token(settings, TENANT)
    db = Path(settings.db_path)
    with live_server(settings) as srv:
        rest = Rest(srv.port, TENANT, token)
        try:
            assert all(r.status == 201 for r in ingest(rest, 5, "before"))
            assert rest.call("GET", "//healthz").status == 200
            if how == "deleted":
                for f in db.parent.glob(db.name + "*"):  # what "rm traces.db*" does
                    f.unlink()
            else:  # a backup restored over it: another file at the same path
                other = db.with_name("other.db")
                sqlite3.connect(other).close()
                other.replace(db)
            health = rest.call("GET", "//healthz")
            assert health.status == 503 and health.body["status"] == "error"
            assert "deleted or replaced" in health.body["reason"] and str(db) not in health.body["reason"]
            after = ingest(rest, 5, "after")
            assert [r.status for r in after] == [503] * 5  # today: 201, and every one of them lost
            err = check_error_body(after[0].body, forbidden=(str(db.parent),))
            assert err["code"] == "internal" and "deleted or replaced" in err["message"]
            batch = rest.call("POST", "/traces", {"traces": [trace_payload()]})
            assert batch.status == 503
            put = rest.call("PUT", "/prompts/p", {"content": {"blocks": [{"id": "a", "role": "user", "content": "x"}]}})
            assert put.status == 503 and check_error_body(put.body)["code"] == "internal"
            assert rest.call("GET", "//healthz").status == 503  # it stays failed: this process cannot recover
        finally:
            rest.close()


async def test_no_write_acknowledged_after_the_file_is_deleted(settings: Settings) -> None:
    """Clients keep ingesting while the file is deleted: nothing sent after the deletion is acknowledged."""
    token = await make_token(settings, TENANT)
    db = Path(settings.db_path)
    deleted = threading.Event()
    late_acks: list[str] = []
    with live_server(settings) as srv:

        def client(k: int) -> None:
            rest = Rest(srv.port, TENANT, token)
            try:
                for i in range(400):
                    sent_after_delete = deleted.is_set()
                    reply = rest.call("POST", "/traces", trace_payload(id=f"c{k}-{i}"))
                    if reply.status in (200, 201) and sent_after_delete:
                        late_acks.append(f"c{k}-{i}")
                    if reply.status == 503:
                        return
            finally:
                rest.close()

        threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(3)]
        for t in threads:
            t.start()
        await anyio.sleep(0.3)  # let the clients get going (the deletion must land mid-stream)
        for f in db.parent.glob(db.name + "*"):
            f.unlink()
        deleted.set()
        for t in threads:
            t.join(30)
            assert not t.is_alive()
    assert late_acks == []


# -- a full disk ------------------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path | None]:
    """A 2 MB tmpfs when we may mount one (root), else None (the test limits SQLite's page count instead)."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    if os.geteuid() != 0:
        yield None
        return
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)], capture_output=True)
    if done.returncode != 0:
        yield None
        return
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


async def test_full_disk_is_a_clear_error_and_loses_nothing_acknowledged(
    tmp_path: Path, small_disk: Path | None
) -> None:
    db = (small_disk or tmp_path) / "traces.db"
    settings = Settings(db_path=str(db), tenant="default", model_timeout=5.0)
    token = await make_token(settings, TENANT)
    with live_server(settings) as srv:
        if small_disk is None:  # no tmpfs: SQLite's own limit gives the same SQLITE_FULL
            store = srv.asgi.state.runtime.app.store
            pages = sqlite3.connect(db).execute("PRAGMA page_count").fetchone()[0]
            # the store answers on the caller's loop: the server's writer thread runs it between transactions.
            await store._write(lambda c: c.execute(f"PRAGMA max_page_count = {pages + 200}"))
        rest = Rest(srv.port, TENANT, token)
        acked: list[str] = []
        refused: list[Reply] = []
        try:
            big = "x" * 20_000  # fills 2 MB in about a hundred traces
            for i in range(2000):
                reply = rest.call("POST", "/traces", trace_payload(id=f"t{i}", output=big + str(i)))
                if reply.status == 201:
                    acked.append(f"t{i}")
                else:
                    refused.append(reply)
                    if len(refused) >= 3:
                        break
            assert refused, "the disk never filled"
            for reply in refused:
                assert reply.status == 507, reply.body  # today: an opaque 500
                err = check_error_body(reply.body, forbidden=(str(db.parent),))
                assert err["code"] == "internal" and "disk" in err["message"] and "full" in err["message"]
            health = rest.call("GET", "//healthz")
            assert health.status == 503 and "full" in health.body["reason"]
            # Reads still work, and every acknowledged trace is there.
            for trace_id in (acked[0], acked[-1]):
                assert rest.call("GET", f"/traces/{trace_id}?fields=id").status == 200
        finally:
            rest.close()
    # After a restart (and on the same full disk) every acknowledged trace is still stored.
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        stored = {row[0] for row in conn.execute("SELECT id FROM traces")}
    finally:
        conn.close()
    assert set(acked) <= stored
    assert len(acked) > 0


# -- prompts import: all or nothing ---------------------------------------------------------------------

GOOD = (
    "name: {name}\nmodel:\n  provider: agnt-local\n  name: echo\nblocks:\n- id: a\n  role: user\n  content: hi {name}\n"
)


def import_dir(folder: Path, db: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from agnt_traces.cli import main

    code = main(["prompts", "import", str(folder), "--db", str(db)])
    out = capsys.readouterr()
    return code, out.out, out.err


def stored_prompts(db: Path) -> list[str]:
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [row[0] for row in conn.execute("SELECT name FROM prompts ORDER BY name")]
    finally:
        conn.close()


def test_prompts_import_with_a_credential_in_one_file_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "prompts"
    folder.mkdir()
    (folder / "a.yaml").write_text(GOOD.format(name="a"))
    (folder / "b.yaml").write_text(
        GOOD.format(name="b").replace("  name: echo\n", "  name: echo\n  params:\n    api_key: sk-123\n")
    )
    (folder / "c.yaml").write_text(GOOD.format(name="c"))
    db = tmp_path / "t.db"
    code, out, err = import_dir(folder, db, capsys)
    assert code == 2 and out == ""
    assert "b.yaml" in err and "api_key" in err and "nothing was imported" in err
    assert "sk-123" not in err
    assert stored_prompts(db) == []  # today: a, b (with the key) and c are all stored
    (folder / "b.yaml").write_text(GOOD.format(name="b"))
    code, out, _ = import_dir(folder, db, capsys)
    assert code == 0 and stored_prompts(db) == ["a", "b", "c"]


def test_prompts_import_names_every_bad_file_and_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "prompts"
    folder.mkdir()
    (folder / "good.yaml").write_text(GOOD.format(name="good"))
    (folder / "role.yaml").write_text(GOOD.format(name="role").replace("role: user", "role: narrator"))
    (folder / "template.yaml").write_text(GOOD.format(name="template").replace("hi template", "'{% if %}'"))
    db = tmp_path / "t.db"
    code, _, err = import_dir(folder, db, capsys)
    assert code == 2
    assert "role.yaml" in err and "blocks.0.role" in err
    assert "template.yaml" in err and "'a'" in err  # the block whose template does not parse
    assert stored_prompts(db) == []


async def test_save_drafts_is_one_transaction(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    from agnt_traces.models import PromptContent

    store: Any = app.store
    contents = [
        PromptContent.model_validate({"blocks": [{"id": "a", "role": "user", "content": f"text {i}"}]})
        for i in range(3)
    ]
    real = store._put_content_sync
    calls = {"n": 0}

    def fail_on_third(db: Any, tenant: str, content: PromptContent) -> str:
        calls["n"] += 1
        if calls["n"] == 3:
            raise sqlite3.OperationalError("disk I/O error")
        return str(real(db, tenant, content))

    monkeypatch.setattr(store, "_put_content_sync", fail_on_third)
    with pytest.raises(sqlite3.OperationalError):
        await store.save_drafts("default", [(f"p{i}", c, None) for i, c in enumerate(contents)])
    monkeypatch.undo()
    assert await store.list_prompts("default") == []

"""How a migration script is cut into statements, and what running migrations twice does."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agnt_traces.store import migrations
from agnt_traces.store.migrations import _split_sql


def test_statements_are_cut_at_their_ends_and_comment_lines_dropped() -> None:
    script = """
    -- a comment line; with a semicolon
    CREATE TABLE a (x TEXT);
    CREATE TABLE b (y TEXT DEFAULT 'semi;colon');
    """
    assert _split_sql(script) == ["CREATE TABLE a (x TEXT);", "CREATE TABLE b (y TEXT DEFAULT 'semi;colon');"]


def test_a_trigger_body_with_inner_semicolons_stays_one_statement() -> None:
    script = """
    CREATE TABLE t (x INTEGER);
    CREATE TABLE log (x INTEGER);
    CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN
        INSERT INTO log VALUES (new.x);
        INSERT INTO log VALUES (new.x + 1);
    END;
    """
    statements = _split_sql(script)
    assert len(statements) == 3
    assert statements[2].startswith("CREATE TRIGGER") and statements[2].endswith("END;")
    db = sqlite3.connect(":memory:")
    for statement in statements:
        db.execute(statement)
    db.execute("INSERT INTO t VALUES (1)")
    assert db.execute("SELECT x FROM log ORDER BY x").fetchall() == [(1,), (2,)]


def test_an_unfinished_statement_is_refused_naming_it() -> None:
    with pytest.raises(RuntimeError, match="incomplete SQL statement in migration: CREATE TABLE c"):
        _split_sql("CREATE TABLE ok (x);\nCREATE TABLE c (x TEXT")


def test_blank_script_has_no_statements() -> None:
    assert _split_sql("\n  \n-- only a comment\n") == []


def test_every_migration_runs_once_and_a_second_run_applies_nothing(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    first = migrations.migrate(db)
    assert first == sorted(first) and first[0] == 1 and len(first) == len(set(first))
    assert migrations.applied(db) == first
    assert migrations.migrate(db) == []  # idempotent: nothing pending
    assert migrations.pending(db) == []
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"traces", "prompts"} <= tables

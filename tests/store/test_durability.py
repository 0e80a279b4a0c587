"""SIGKILL during ingest and playground activity, over stdio and HTTP: every acknowledged write survives; the
file stays consistent."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from durability import (
    check_batches,
    check_database,
    check_playground_after_restart,
    http_playground_round,
    http_round,
    stdio_round,
    stored_ids,
)


def kill_rounds(db: str, rounds: int, seed: int) -> tuple[int, int]:
    rng = random.Random(seed)
    total_acked = 0
    for n in range(rounds):
        acked, _ = stdio_round(db, n, rng)
        stored = stored_ids(db)
        lost = acked - stored
        assert not lost, f"round {n}: {len(lost)} acknowledged traces lost, e.g. {sorted(lost)[:3]}"
        check_database(db)
        total_acked += len(acked)
    return total_acked, len(stored_ids(db))


def test_sigkill_during_stdio_ingest_loses_nothing_acknowledged(tmp_path: Path) -> None:
    acked, stored = kill_rounds(str(tmp_path / "d.db"), rounds=4, seed=1)
    assert acked > 0 and stored >= acked


@pytest.mark.slow
def test_sigkill_during_stdio_ingest_25_rounds(tmp_path: Path) -> None:
    acked, stored = kill_rounds(str(tmp_path / "d.db"), rounds=25, seed=2)
    assert acked > 0 and stored >= acked


# -- HTTP ---------------------------------------------------------------------------------------------------


def http_kill_rounds(db: str, rounds: int, seed: int) -> tuple[int, int]:
    """``rounds`` HTTP ingest rounds, each ended by SIGKILL; checked after every kill. Returns (acked, stored)."""
    rng = random.Random(seed)
    total_acked = 0
    for n in range(rounds):
        acked, batches, problems = http_round(db, n, rng)
        assert not problems, f"round {n}: unexpected answers before the kill: {problems[:3]}"
        lost = acked - stored_ids(db)
        assert not lost, f"round {n}: {len(lost)} acknowledged traces lost, e.g. {sorted(lost)[:3]}"
        check_database(db)
        check_batches(db, batches)
        total_acked += len(acked)
    stored = len(stored_ids(db))
    print(f"HTTP durability: {rounds} rounds, {total_acked} traces acknowledged, {stored} stored")
    return total_acked, stored


def test_sigkill_during_http_ingest_loses_nothing_acknowledged(tmp_path: Path) -> None:
    acked, stored = http_kill_rounds(str(tmp_path / "d.db"), rounds=3, seed=11)
    assert acked > 0 and stored >= acked


@pytest.mark.slow
def test_sigkill_during_http_ingest_25_rounds(tmp_path: Path) -> None:
    acked, stored = http_kill_rounds(str(tmp_path / "d.db"), rounds=25, seed=12)
    assert acked > 0 and stored >= acked


def playground_kill_rounds(db: str, rounds: int, seed: int) -> tuple[int, int]:
    """Returns (acknowledged sessions, runs checked) over all rounds."""
    rng = random.Random(seed)
    sessions = runs = 0
    for n in range(rounds):
        log = http_playground_round(db, n, rng)
        assert not log.problems, f"round {n}: {log.problems[:3]}"
        check_database(db)
        runs += check_playground_after_restart(db, log)
        check_database(db)
        sessions += len(log.sessions)
    print(f"HTTP playground durability: {rounds} rounds, {sessions} sessions, {runs} runs checked")
    return sessions, runs


def test_sigkill_during_playground_runs_keeps_sessions_whole(tmp_path: Path) -> None:
    sessions, runs = playground_kill_rounds(str(tmp_path / "d.db"), rounds=1, seed=21)
    assert sessions > 0 and runs > 0


@pytest.mark.slow
def test_sigkill_during_playground_runs_8_rounds(tmp_path: Path) -> None:
    sessions, runs = playground_kill_rounds(str(tmp_path / "d.db"), rounds=8, seed=22)
    assert sessions > 0 and runs > 0

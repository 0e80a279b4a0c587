"""SIGKILL during ingest: every acknowledged trace survives; the file stays consistent."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from durability import check_database, stdio_round, stored_ids


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

"""Golden cases, gates, replay runs, the replay call cache and version gate records on SQLite."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from ..golden_models import GatePolicy, GateRecord, GoldenRecord, ReplayError, ReplayRecord
from ..ids import now_ms
from .sqlite_base import SqliteBase

__all__ = ["GoldenMixin"]

_CHUNK = 400


def _golden(row: Any) -> GoldenRecord:
    return GoldenRecord.from_row(
        id=row[0], prompt_name=row[1], trace_id=row[2], document=row[3], created_at=row[4], updated_at=row[5]
    )


def _replay(row: Any) -> ReplayRecord:
    return ReplayRecord.from_row(
        id=row[0],
        prompt_name=row[1],
        etag=row[2],
        status=row[3],
        owner=row[4],
        document=row[5],
        created_at=row[6],
        updated_at=row[7],
    )


_GOLDEN_COLS = "id, prompt_name, trace_id, data, created_at, updated_at"
_REPLAY_COLS = "id, prompt_name, etag, status, owner, data, created_at, updated_at"


class GoldenMixin(SqliteBase):
    # -- golden cases -------------------------------------------------------------------------------

    async def pin_golden(self, tenant: str, records: list[GoldenRecord], max_cases: int) -> list[GoldenRecord]:
        """Insert cases; a trace already pinned to the prompt keeps its case id and gets the new expectations.
        Returns the stored cases in the order given. More than ``max_cases`` cases on the prompt afterwards
        raises ``OverflowError`` and nothing is written."""

        def run(db: sqlite3.Connection) -> list[GoldenRecord]:
            tid = self._tenant_id_sync(db, tenant)
            out = []
            for rec in records:
                row = db.execute(
                    f"INSERT INTO golden_cases(tenant_id, {_GOLDEN_COLS}) VALUES (?,?,?,?,?,?,?) "
                    "ON CONFLICT(tenant_id, prompt_name, trace_id) DO UPDATE SET data = excluded.data, "
                    f"updated_at = excluded.updated_at RETURNING {_GOLDEN_COLS}",
                    (
                        tid,
                        rec.id,
                        rec.prompt_name,
                        rec.trace_id,
                        rec.document(),
                        rec.created_at,
                        rec.updated_at,
                    ),
                ).fetchone()
                out.append(_golden(row))
            if records:
                (count,) = db.execute(
                    "SELECT count(*) FROM golden_cases WHERE tenant_id = ? AND prompt_name = ?",
                    (tid, records[0].prompt_name),
                ).fetchone()
                if count > max_cases:
                    raise OverflowError(count)
            return out

        return await self._write(run)

    async def list_golden(self, tenant: str, prompt_name: str) -> list[GoldenRecord]:
        tid = await self._tenant_id(tenant)
        if tid is None:
            return []
        rows = await self._fetchall(
            f"SELECT {_GOLDEN_COLS} FROM golden_cases WHERE tenant_id = ? AND prompt_name = ? ORDER BY id",
            (tid, prompt_name),
        )
        return [_golden(r) for r in rows]

    async def update_golden(self, tenant: str, rec: GoldenRecord) -> bool:
        """Store a case's changed expectations and ``updated_at``; False if the case is gone."""

        def run(db: sqlite3.Connection) -> bool:
            tid = self._tenant_id_sync(db, tenant)
            cur = db.execute(
                "UPDATE golden_cases SET data = ?, updated_at = ? WHERE tenant_id = ? AND prompt_name = ? AND id = ?",
                (rec.document(), rec.updated_at, tid, rec.prompt_name, rec.id),
            )
            return cur.rowcount == 1

        return await self._write(run)

    async def unpin_golden(self, tenant: str, prompt_name: str, case_ids: list[str]) -> list[str]:
        def run(db: sqlite3.Connection) -> list[str]:
            tid = self._tenant_id_sync(db, tenant)
            removed: list[str] = []
            for i in range(0, len(case_ids), _CHUNK):
                chunk = case_ids[i : i + _CHUNK]
                marks = ",".join("?" * len(chunk))
                removed += [
                    r[0]
                    for r in db.execute(
                        f"DELETE FROM golden_cases WHERE tenant_id = ? AND prompt_name = ? AND id IN ({marks}) "
                        "RETURNING id",
                        (tid, prompt_name, *chunk),
                    )
                ]
            return removed

        return await self._write(run)

    # -- gates --------------------------------------------------------------------------------------

    async def get_gate(self, tenant: str, prompt_name: str) -> GatePolicy | None:
        tid = await self._tenant_id(tenant)
        if tid is None:
            return None
        row = await self._fetchone(
            "SELECT policy FROM prompt_gates WHERE tenant_id = ? AND prompt_name = ?", (tid, prompt_name)
        )
        return GatePolicy.model_validate_json(row[0]) if row else None

    async def set_gate(self, tenant: str, prompt_name: str, policy: GatePolicy | None) -> bool:
        """Set (or with ``None`` remove) the gate; returns whether a gate existed before."""

        def run(db: sqlite3.Connection) -> bool:
            tid = self._tenant_id_sync(db, tenant)
            existed = (
                db.execute(
                    "SELECT 1 FROM prompt_gates WHERE tenant_id = ? AND prompt_name = ?", (tid, prompt_name)
                ).fetchone()
                is not None
            )
            if policy is None:
                db.execute("DELETE FROM prompt_gates WHERE tenant_id = ? AND prompt_name = ?", (tid, prompt_name))
            else:
                db.execute(
                    "INSERT INTO prompt_gates(tenant_id, prompt_name, policy, updated_at) VALUES (?,?,?,?) "
                    "ON CONFLICT(tenant_id, prompt_name) DO UPDATE SET policy = excluded.policy, "
                    "updated_at = excluded.updated_at",
                    (tid, prompt_name, policy.model_dump_json(), now_ms()),
                )
            return existed

        return await self._write(run)

    # -- replays ------------------------------------------------------------------------------------

    async def save_replay(self, tenant: str, rec: ReplayRecord) -> None:
        """Insert or replace a replay run's row (its id is the key)."""

        def run(db: sqlite3.Connection) -> None:
            tid = self._tenant_id_sync(db, tenant)
            db.execute(
                f"INSERT INTO replays(tenant_id, {_REPLAY_COLS}) VALUES (?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT(tenant_id, id) DO UPDATE SET status = excluded.status, data = excluded.data, "
                "updated_at = excluded.updated_at",
                (
                    tid,
                    rec.id,
                    rec.prompt_name,
                    rec.etag,
                    rec.status,
                    rec.owner,
                    rec.document(),
                    rec.created_at,
                    rec.updated_at,
                ),
            )

        await self._write(run)

    async def get_replay(self, tenant: str, replay_id: str) -> ReplayRecord | None:
        tid = await self._tenant_id(tenant)
        if tid is None:
            return None
        row = await self._fetchone(
            f"SELECT {_REPLAY_COLS} FROM replays WHERE tenant_id = ? AND id = ?", (tid, replay_id)
        )
        return _replay(row) if row else None

    async def list_replays(
        self, tenant: str, prompt_name: str, *, etag: str | None = None, limit: int = 20
    ) -> list[ReplayRecord]:
        """A prompt's replays, newest first (optionally only those of one content etag)."""
        tid = await self._tenant_id(tenant)
        if tid is None:
            return []
        sql = f"SELECT {_REPLAY_COLS} FROM replays WHERE tenant_id = ? AND prompt_name = ?"
        params: list[Any] = [tid, prompt_name]
        if etag is not None:
            sql += " AND etag = ?"
            params.append(etag)
        rows = await self._fetchall(sql + " ORDER BY id DESC LIMIT ?", (*params, limit))
        return [_replay(r) for r in rows]

    async def fail_running_replays(self, is_dead: Callable[[ReplayRecord], bool], error: ReplayError) -> int:
        """Mark every running replay for which ``is_dead`` says so as ``error`` (a restart interrupted it)."""

        def run(db: sqlite3.Connection) -> int:
            rows = db.execute(f"SELECT tenant_id, {_REPLAY_COLS} FROM replays WHERE status = 'running'").fetchall()
            count = 0
            for row in rows:
                rec = _replay(row[1:])
                if not is_dead(rec):
                    continue
                failed = rec.model_copy(update={"status": "error", "error": error})
                db.execute(
                    "UPDATE replays SET status = 'error', data = ?, updated_at = ? WHERE tenant_id = ? AND id = ?",
                    (failed.document(), now_ms(), row[0], rec.id),
                )
                count += 1
            return count

        return await self._write(run)

    # -- the call cache -----------------------------------------------------------------------------

    async def cache_get(self, tenant: str, request_hash: bytes) -> str | None:
        tid = await self._tenant_id(tenant)
        if tid is None:
            return None
        row = await self._fetchone(
            "SELECT trace_id FROM call_cache WHERE tenant_id = ? AND request_hash = ?", (tid, request_hash)
        )
        return str(row[0]) if row else None

    async def cache_put(self, tenant: str, request_hash: bytes, trace_id: str) -> None:
        def run(db: sqlite3.Connection) -> None:
            tid = self._tenant_id_sync(db, tenant)
            db.execute(
                "INSERT INTO call_cache(tenant_id, request_hash, trace_id, created_at) VALUES (?,?,?,?) "
                "ON CONFLICT(tenant_id, request_hash) DO UPDATE SET trace_id = excluded.trace_id, "
                "created_at = excluded.created_at",
                (tid, request_hash, trace_id, now_ms()),
            )

        await self._write(run)

    # -- what let a version through its gate ----------------------------------------------------------

    async def version_gates(self, tenant: str, prompt_name: str) -> dict[int, GateRecord]:
        """version → the latest gate record of its publishes (``{replayId, summary}`` or ``{override}``)."""
        tid = await self._tenant_id(tenant)
        if tid is None:
            return {}
        rows = await self._fetchall(
            "SELECT version, data FROM version_gates WHERE tenant_id = ? AND prompt_name = ? ORDER BY created_at",
            (tid, prompt_name),
        )
        return {int(r[0]): GateRecord.model_validate_json(r[1]) for r in rows}

"""Golden cases, gates, replay runs, the replay call cache and version gate records on PostgreSQL.

The same semantics as the SQLite store (store.sqlite_golden), for several server processes at once:

- pinning and gate changes of one prompt take a transaction-scoped advisory lock on (tenant, prompt),
  so the case limit is checked against every pin that committed before, and ``set_gate`` answers
  whether a gate existed just before its own change;
- ``fail_running_replays`` locks the running rows it reads (``FOR UPDATE``): a replay that another
  process finishes meanwhile is re-read and skipped, never marked failed over its result;
- ids sort bytewise (``COLLATE "C"``), as in SQLite, whatever the database's collation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..golden_models import GatePolicy, GateRecord, GoldenRecord, ReplayError, ReplayRecord
from ..ids import now_ms
from .postgres_base import PostgresBase

if TYPE_CHECKING:
    from psycopg import AsyncConnection

__all__ = ["PostgresGoldenMixin"]

_GOLDEN_COLS = "id, prompt_name, trace_id, data, created_at, updated_at"
_REPLAY_COLS = "id, prompt_name, etag, status, owner, data, created_at, updated_at"


def _golden(row: dict[str, Any]) -> GoldenRecord:
    return GoldenRecord.from_row(
        id=row["id"],
        prompt_name=row["prompt_name"],
        trace_id=row["trace_id"],
        document=row["data"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _replay(row: dict[str, Any]) -> ReplayRecord:
    return ReplayRecord.from_row(
        id=row["id"],
        prompt_name=row["prompt_name"],
        etag=row["etag"],
        status=row["status"],
        owner=row["owner"],
        document=row["data"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def _lock_prompt_golden(conn: AsyncConnection[Any], tid: int, prompt_name: str) -> None:
    """Serialise this transaction with every other pin or gate change of the tenant's prompt (until it ends).
    The two-key form: its locks never meet the migrations' one-key lock."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock((%s %% 2147483647)::int, hashtext(%s))", (tid, "golden:" + prompt_name)
    )


class PostgresGoldenMixin(PostgresBase):
    # -- golden cases -------------------------------------------------------------------------------

    async def pin_golden(self, tenant: str, records: list[GoldenRecord], max_cases: int) -> list[GoldenRecord]:
        """Insert cases; a trace already pinned to the prompt keeps its case id and gets the new expectations.
        Returns the stored cases in the order given. More than ``max_cases`` cases on the prompt afterwards
        raises ``OverflowError`` and nothing is written."""

        async def run(conn: AsyncConnection[Any]) -> list[GoldenRecord]:
            tid = await self._tenant_id_tx(conn, tenant)
            if records:
                await _lock_prompt_golden(conn, tid, records[0].prompt_name)
            out = []
            for rec in records:
                cur = await conn.execute(
                    f"INSERT INTO golden_cases(tenant_id, {_GOLDEN_COLS}) VALUES (%s,%s,%s,%s,%s,%s,%s) "
                    "ON CONFLICT (tenant_id, prompt_name, trace_id) DO UPDATE SET data = excluded.data, "
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
                )
                row = await cur.fetchone()
                assert row is not None
                out.append(_golden(row))
            if records:
                cur = await conn.execute(
                    "SELECT count(*) AS n FROM golden_cases WHERE tenant_id = %s AND prompt_name = %s",
                    (tid, records[0].prompt_name),
                )
                got = await cur.fetchone()
                assert got is not None
                if got["n"] > max_cases:
                    raise OverflowError(got["n"])
            return out

        return await self._write(run)

    async def list_golden(self, tenant: str, prompt_name: str) -> list[GoldenRecord]:
        tid = await self._tenant_id(tenant)
        if tid is None:
            return []
        rows = await self._fetchall(
            f"SELECT {_GOLDEN_COLS} FROM golden_cases WHERE tenant_id = %s AND prompt_name = %s "
            'ORDER BY id COLLATE "C"',
            (tid, prompt_name),
        )
        return [_golden(r) for r in rows]

    async def update_golden(self, tenant: str, rec: GoldenRecord) -> bool:
        """Store a case's changed expectations and ``updated_at``; False if the case is gone."""

        async def run(conn: AsyncConnection[Any]) -> bool:
            tid = await self._tenant_id_tx(conn, tenant)
            cur = await conn.execute(
                "UPDATE golden_cases SET data = %s, updated_at = %s "
                "WHERE tenant_id = %s AND prompt_name = %s AND id = %s",
                (rec.document(), rec.updated_at, tid, rec.prompt_name, rec.id),
            )
            return cur.rowcount == 1

        return await self._write(run)

    async def unpin_golden(self, tenant: str, prompt_name: str, case_ids: list[str]) -> list[str]:
        async def run(conn: AsyncConnection[Any]) -> list[str]:
            tid = await self._tenant_id_tx(conn, tenant)
            cur = await conn.execute(
                "DELETE FROM golden_cases WHERE tenant_id = %s AND prompt_name = %s AND id = ANY(%s) RETURNING id",
                (tid, prompt_name, list(case_ids)),
            )
            return [r["id"] for r in await cur.fetchall()]

        return await self._write(run)

    # -- gates --------------------------------------------------------------------------------------

    async def get_gate(self, tenant: str, prompt_name: str) -> GatePolicy | None:
        tid = await self._tenant_id(tenant)
        if tid is None:
            return None
        row = await self._fetchone(
            "SELECT policy FROM prompt_gates WHERE tenant_id = %s AND prompt_name = %s", (tid, prompt_name)
        )
        return GatePolicy.model_validate_json(row["policy"]) if row else None

    async def set_gate(self, tenant: str, prompt_name: str, policy: GatePolicy | None) -> bool:
        """Set (or with ``None`` remove) the gate; returns whether a gate existed before."""

        async def run(conn: AsyncConnection[Any]) -> bool:
            tid = await self._tenant_id_tx(conn, tenant)
            await _lock_prompt_golden(conn, tid, prompt_name)
            cur = await conn.execute(
                "SELECT 1 FROM prompt_gates WHERE tenant_id = %s AND prompt_name = %s", (tid, prompt_name)
            )
            existed = await cur.fetchone() is not None
            if policy is None:
                await conn.execute(
                    "DELETE FROM prompt_gates WHERE tenant_id = %s AND prompt_name = %s", (tid, prompt_name)
                )
            else:
                await conn.execute(
                    "INSERT INTO prompt_gates(tenant_id, prompt_name, policy, updated_at) VALUES (%s,%s,%s,%s) "
                    "ON CONFLICT (tenant_id, prompt_name) DO UPDATE SET policy = excluded.policy, "
                    "updated_at = excluded.updated_at",
                    (tid, prompt_name, policy.model_dump_json(), now_ms()),
                )
            return existed

        return await self._write(run)

    # -- replays ------------------------------------------------------------------------------------

    async def save_replay(self, tenant: str, rec: ReplayRecord) -> None:
        """Insert or replace a replay run's row (its id is the key)."""

        async def run(conn: AsyncConnection[Any]) -> None:
            tid = await self._tenant_id_tx(conn, tenant)
            await conn.execute(
                f"INSERT INTO replays(tenant_id, {_REPLAY_COLS}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s) "
                "ON CONFLICT (tenant_id, id) DO UPDATE SET status = excluded.status, data = excluded.data, "
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
            f"SELECT {_REPLAY_COLS} FROM replays WHERE tenant_id = %s AND id = %s", (tid, replay_id)
        )
        return _replay(row) if row else None

    async def list_replays(
        self, tenant: str, prompt_name: str, *, etag: str | None = None, limit: int = 20
    ) -> list[ReplayRecord]:
        """A prompt's replays, newest first (optionally only those of one content etag)."""
        tid = await self._tenant_id(tenant)
        if tid is None:
            return []
        sql = f"SELECT {_REPLAY_COLS} FROM replays WHERE tenant_id = %s AND prompt_name = %s"
        params: list[Any] = [tid, prompt_name]
        if etag is not None:
            sql += " AND etag = %s"
            params.append(etag)
        rows = await self._fetchall(sql + ' ORDER BY id COLLATE "C" DESC LIMIT %s', (*params, limit))
        return [_replay(r) for r in rows]

    async def fail_running_replays(self, is_dead: Callable[[ReplayRecord], bool], error: ReplayError) -> int:
        """Mark every running replay for which ``is_dead`` says so as ``error`` (a restart interrupted it).
        The running rows are locked as they are read: one finished meanwhile is not running any more and
        is left as it is."""

        async def run(conn: AsyncConnection[Any]) -> int:
            cur = await conn.execute(
                f"SELECT tenant_id, {_REPLAY_COLS} FROM replays WHERE status = 'running' "
                "ORDER BY tenant_id, id FOR UPDATE"
            )
            count = 0
            for row in await cur.fetchall():
                rec = _replay(row)
                if not is_dead(rec):
                    continue
                failed = rec.model_copy(update={"status": "error", "error": error})
                done = await conn.execute(
                    "UPDATE replays SET status = 'error', data = %s, updated_at = %s "
                    "WHERE tenant_id = %s AND id = %s AND status = 'running'",
                    (failed.document(), now_ms(), row["tenant_id"], rec.id),
                )
                count += done.rowcount
            return count

        return await self._write(run)

    # -- the call cache -----------------------------------------------------------------------------

    async def cache_get(self, tenant: str, request_hash: bytes) -> str | None:
        tid = await self._tenant_id(tenant)
        if tid is None:
            return None
        row = await self._fetchone(
            "SELECT trace_id FROM call_cache WHERE tenant_id = %s AND request_hash = %s", (tid, request_hash)
        )
        return str(row["trace_id"]) if row else None

    async def cache_put(self, tenant: str, request_hash: bytes, trace_id: str) -> None:
        async def run(conn: AsyncConnection[Any]) -> None:
            tid = await self._tenant_id_tx(conn, tenant)
            await conn.execute(
                "INSERT INTO call_cache(tenant_id, request_hash, trace_id, created_at) VALUES (%s,%s,%s,%s) "
                "ON CONFLICT (tenant_id, request_hash) DO UPDATE SET trace_id = excluded.trace_id, "
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
            "SELECT version, data FROM version_gates WHERE tenant_id = %s AND prompt_name = %s ORDER BY created_at",
            (tid, prompt_name),
        )
        return {int(r["version"]): GateRecord.model_validate_json(r["data"]) for r in rows}


async def record_version_gate(
    conn: AsyncConnection[Any], tid: int, prompt_name: str, version: int, gate: GateRecord, now: int
) -> None:
    """Record what let ``version`` through its gate, inside the publish's own transaction."""
    await conn.execute(
        "INSERT INTO version_gates(tenant_id, prompt_name, version, data, created_at) VALUES (%s,%s,%s,%s,%s) "
        "ON CONFLICT (tenant_id, prompt_name, version, created_at) DO UPDATE SET data = excluded.data",
        (tid, prompt_name, version, gate.model_dump_json(), now),
    )

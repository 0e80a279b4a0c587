"""Playground sessions and API tokens on SQLite."""

from __future__ import annotations

import sqlite3
from typing import Any

from ..ids import new_id, now_ms
from ..playground_session import PlaygroundSession, SessionRun
from .base import SessionRecord, TokenRecord
from .codec import manifest_etag_of, session_run
from .sqlite_base import SqliteBase

__all__ = ["SessionsMixin"]


class SessionsMixin(SqliteBase):
    # -- sessions -----------------------------------------------------------------------------------

    async def create_session(self, tenant: str, record: SessionRecord) -> None:
        def run(db: sqlite3.Connection) -> None:
            tid = self._tenant_id_sync(db, tenant)
            db.execute(
                "INSERT INTO sessions(tenant_id, id, trace_id, data, revision, created_at, updated_at) "
                "VALUES (?,?,?,?,?,?,?)",
                (
                    tid,
                    record.id,
                    record.trace_id,
                    record.session.to_json(),
                    record.revision,
                    record.created_at,
                    record.updated_at,
                ),
            )

        await self._write(run)

    async def get_session(self, tenant: str, session_id: str) -> SessionRecord | None:
        """The session's row alone: its runs are not read (``session_runs``)."""
        tid = await self._tenant_id(tenant)
        if tid is None:
            return None
        row = await self._fetchone(
            "SELECT id, trace_id, data, revision, created_at, updated_at FROM sessions WHERE tenant_id = ? AND id = ?",
            (tid, session_id),
        )
        if row is None:
            return None
        return SessionRecord(
            id=row[0],
            trace_id=row[1],
            session=PlaygroundSession.from_json(row[2]),
            revision=row[3],
            created_at=row[4],
            updated_at=row[5],
        )

    async def session_runs(self, tenant: str, session_id: str) -> list[SessionRun]:
        """A session's runs are the playground traces that carry its id, oldest first (no trace is built:
        each body is read once, each distinct manifest once)."""
        tid = await self._tenant_id(tenant)
        if tid is None:
            return []

        def run(db: sqlite3.Connection) -> list[SessionRun]:
            cur = db.execute(
                "SELECT seq, id, manifest_id, model_provider, model_name, status, input_tokens, output_tokens, "
                "total_tokens, cost, duration, body FROM traces "
                "WHERE session_id = ? AND tenant_id = ? AND source = 'playground' ORDER BY seq",
                (session_id, tid),
            )
            names = [d[0] for d in cur.description]
            etags: dict[int, str | None] = {}

            def manifest_etag(manifest_id: int) -> str | None:
                if manifest_id not in etags:
                    blob = db.execute("SELECT data FROM manifests WHERE id = ?", (manifest_id,)).fetchone()[0]
                    etags[manifest_id] = manifest_etag_of(blob)
                return etags[manifest_id]

            return [session_run(dict(zip(names, row, strict=True)), manifest_etag) for row in cur.fetchall()]

        return await self._read(run)

    async def list_sessions(self, tenant: str, limit: int) -> list[SessionRecord]:
        tid = await self._tenant_id(tenant)
        if tid is None:
            return []
        rows = await self._fetchall(
            "SELECT s.id, s.trace_id, s.data, s.revision, s.created_at, s.updated_at, "
            "(SELECT count(*) FROM traces t WHERE t.session_id = s.id AND t.tenant_id = s.tenant_id) "
            "FROM sessions s WHERE s.tenant_id = ? ORDER BY s.updated_at DESC LIMIT ?",
            (tid, limit),
        )
        return [
            SessionRecord(
                id=r[0],
                trace_id=r[1],
                session=PlaygroundSession.from_json(r[2]),
                revision=r[3],
                created_at=r[4],
                updated_at=r[5],
                run_count=r[6],
            )
            for r in rows
        ]

    async def update_session(self, tenant: str, record: SessionRecord, expected_revision: int) -> bool:
        """Compare-and-set on the session's revision; False when it moved (nothing is written)."""

        def run(db: sqlite3.Connection) -> bool:
            tid = self._tenant_id_sync(db, tenant)
            cur = db.execute(
                "UPDATE sessions SET data = ?, revision = ?, updated_at = ? "
                "WHERE tenant_id = ? AND id = ? AND revision = ?",
                (
                    record.session.to_json(),
                    record.revision,
                    record.updated_at,
                    tid,
                    record.id,
                    expected_revision,
                ),
            )
            return cur.rowcount == 1

        return await self._write(run)

    async def delete_session(self, tenant: str, session_id: str) -> bool:
        def run(db: sqlite3.Connection) -> bool:
            tid = self._tenant_id_sync(db, tenant)
            return db.execute("DELETE FROM sessions WHERE tenant_id = ? AND id = ?", (tid, session_id)).rowcount == 1

        return await self._write(run)

    async def expire_sessions(self, idle_before_ms: int) -> int:
        def run(db: sqlite3.Connection) -> int:
            return db.execute("DELETE FROM sessions WHERE updated_at < ?", (idle_before_ms,)).rowcount

        return await self._write(run)

    # -- API tokens ---------------------------------------------------------------------------------

    async def create_token(self, tenant: str, name: str, token_hash: bytes) -> TokenRecord:
        def run(db: sqlite3.Connection) -> TokenRecord:
            tid = self._tenant_id_sync(db, tenant)
            rec = TokenRecord(id=new_id(), tenant=tenant, name=name, created_at=now_ms(), revoked_at=None)
            db.execute(
                "INSERT INTO api_tokens(id, tenant_id, name, token_hash, created_at) VALUES (?,?,?,?,?)",
                (rec.id, tid, name, token_hash, rec.created_at),
            )
            return rec

        return await self._write(run)

    async def list_tokens(self, tenant: str | None) -> list[TokenRecord]:
        sql = (
            "SELECT a.id, t.name, a.name, a.created_at, a.revoked_at FROM api_tokens a "
            "JOIN tenants t ON t.id = a.tenant_id"
        )
        params: tuple[Any, ...] = ()
        if tenant is not None:
            sql += " WHERE t.name = ?"
            params = (tenant,)
        rows = await self._fetchall(sql + " ORDER BY a.created_at", params)
        return [TokenRecord(id=r[0], tenant=r[1], name=r[2], created_at=r[3], revoked_at=r[4]) for r in rows]

    async def revoke_token(self, token_id: str) -> bool:
        def run(db: sqlite3.Connection) -> bool:
            cur = db.execute(
                "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (now_ms(), token_id),
            )
            return cur.rowcount == 1

        return await self._write(run)

    async def tenant_for_token(self, token_hash: bytes) -> str | None:
        """The tenant of an unrevoked token; the lookup is by hash (an index probe, not a string compare)."""
        row = await self._fetchone(
            "SELECT t.name FROM api_tokens a JOIN tenants t ON t.id = a.tenant_id "
            "WHERE a.token_hash = ? AND a.revoked_at IS NULL",
            (token_hash,),
        )
        return str(row[0]) if row else None

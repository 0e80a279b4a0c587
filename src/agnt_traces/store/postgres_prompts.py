"""Prompts, playground sessions and API tokens on PostgreSQL.

A prompt's row is locked (``SELECT … FOR UPDATE``) by every write to it, so saves and publishes from any
number of server processes apply one after another: a publish with ``expected_etag`` checks and publishes
under that lock, and of two racing publishes of one draft exactly one wins. Sessions are compare-and-set
on their revision (``UPDATE … WHERE revision = %s``), which PostgreSQL re-checks on the newest row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import Conflict, NotFound, PreconditionFailed
from ..golden_models import GateRecord
from ..ids import new_id, now_ms
from ..models import PromptContent
from ..playground_session import PlaygroundSession, SessionRun
from ..prompt_records import LabelMove, PromptPick, PromptRecord, PromptVersion
from .base import SessionRecord, SessionSave, TokenRecord
from .codec import manifest_etag_of, session_run
from .picks import pick_query, picked
from .postgres_base import PostgresBase
from .postgres_golden import record_version_gate

if TYPE_CHECKING:
    from psycopg import AsyncConnection

__all__ = ["PostgresPromptsMixin"]


def _not_found(name: str) -> NotFound:
    return NotFound(
        f"prompt {name!r} not found: list_prompts shows the prompts of this tenant; upsert_prompt creates one",
        {"prompt": name},
    )


class PostgresPromptsMixin(PostgresBase):
    # -- prompts ------------------------------------------------------------------------------------

    async def _prompt_row(
        self, conn: AsyncConnection[Any], tid: int, name: str, *, lock: bool = False
    ) -> dict[str, Any] | None:
        cur = await conn.execute(
            "SELECT id, name, description, draft_etag, draft_revision, created_at, updated_at "
            "FROM prompts WHERE tenant_id = %s AND name = %s" + (" FOR UPDATE" if lock else ""),
            (tid, name),
        )
        row: dict[str, Any] | None = await cur.fetchone()
        return row

    async def _load_prompt(self, conn: AsyncConnection[Any], tid: int, name: str) -> PromptRecord | None:
        row = await self._prompt_row(conn, tid, name)
        if row is None:
            return None
        cur = await conn.execute(
            "SELECT content FROM contents WHERE tenant_id = %s AND etag = %s", (tid, row["draft_etag"])
        )
        content = await cur.fetchone()
        assert content is not None
        cur = await conn.execute(
            "SELECT version, etag, note, created_at FROM prompt_versions WHERE prompt_id = %s ORDER BY version",
            (row["id"],),
        )
        versions = [PromptVersion(v["version"], v["etag"], v["note"], v["created_at"]) for v in await cur.fetchall()]
        cur = await conn.execute(
            "SELECT label, version FROM prompt_labels WHERE prompt_id = %s ORDER BY label", (row["id"],)
        )
        labels = {r["label"]: r["version"] for r in await cur.fetchall()}
        return PromptRecord(
            name=row["name"],
            description=row["description"],
            draft=PromptContent.model_validate_json(content["content"]),
            draft_etag=row["draft_etag"],
            draft_revision=row["draft_revision"],
            versions=versions,
            labels=labels,
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    async def list_prompts(self, tenant: str) -> list[PromptRecord]:
        tid = await self._tenant_id(tenant)
        if tid is None:
            return []

        async def run(conn: AsyncConnection[Any]) -> list[PromptRecord]:
            cur = await conn.execute("SELECT name FROM prompts WHERE tenant_id = %s ORDER BY name", (tid,))
            names = [r["name"] for r in await cur.fetchall()]
            out = []
            for n in names:
                rec = await self._load_prompt(conn, tid, n)
                if rec is not None:
                    out.append(rec)
            return out

        return await self._read(run)

    async def get_prompt(self, tenant: str, name: str) -> PromptRecord | None:
        tid = await self._tenant_id(tenant)
        if tid is None:
            return None
        return await self._read(self._load_prompt, tid, name)

    async def pick_prompt(self, tenant: str, name: str, *, label: str | None, version: int | None) -> PromptPick | None:
        """What ``label``, ``version`` or (neither) the draft selects of the prompt; None when the prompt, the
        label or the version does not exist."""
        tid = await self._tenant_id(tenant)
        if tid is None:
            return None
        query = pick_query(tid, name, label, version, mark="%s")
        if query is None:
            return None
        sql, params = query

        async def run(conn: AsyncConnection[Any]) -> Any:
            cur = await conn.execute(sql, params)
            return await cur.fetchone()

        return picked(name, await self._read(run))

    async def save_draft(
        self,
        tenant: str,
        name: str,
        content: PromptContent,
        *,
        description: str | None = None,
        expected_revision: int | None = None,
    ) -> PromptRecord:
        """Create the prompt or replace its draft. With ``expected_revision``, a draft that moved since
        is a ``Conflict`` and nothing changes. Saving the same content again keeps the revision."""
        return await self._write(self._save_draft_tx, tenant, name, content, description, expected_revision)

    async def save_drafts(self, tenant: str, drafts: list[tuple[str, PromptContent, str | None]]) -> list[PromptRecord]:
        """Save several drafts ``(name, content, description)`` in one transaction: all or nothing."""

        async def run(conn: AsyncConnection[Any]) -> list[PromptRecord]:
            return [await self._save_draft_tx(conn, tenant, name, content, desc) for name, content, desc in drafts]

        return await self._write(run)

    async def save_session_draft(
        self,
        tenant: str,
        session_id: str,
        session_revision: int,
        name: str,
        content: PromptContent,
        *,
        expected_revision: int | None,
        update_session: Callable[[PlaygroundSession, PromptRecord], PlaygroundSession],
    ) -> SessionSave:
        """Save a playground session's content to a prompt's draft and update the session, in one transaction
        (see ``SqliteStore.save_session_draft``); the session row is locked while it happens."""

        async def run(conn: AsyncConnection[Any]) -> SessionSave:
            tid = await self._tenant_id_tx(conn, tenant)
            cur = await conn.execute(
                "SELECT data, revision FROM sessions WHERE tenant_id = %s AND id = %s FOR UPDATE", (tid, session_id)
            )
            row = await cur.fetchone()
            if row is None:
                return SessionSave("session_gone")
            if row["revision"] != session_revision:
                return SessionSave("session_moved")
            saved = await self._save_draft_tx(conn, tenant, name, content, None, expected_revision)
            session = update_session(PlaygroundSession.from_json(row["data"]), saved)
            await conn.execute(
                "UPDATE sessions SET data = %s, revision = %s, updated_at = %s WHERE tenant_id = %s AND id = %s",
                (session.to_json(), session_revision + 1, now_ms(), tid, session_id),
            )
            return SessionSave("saved", saved, session_revision + 1)

        return await self._write(run)

    async def _save_draft_tx(
        self,
        conn: AsyncConnection[Any],
        tenant: str,
        name: str,
        content: PromptContent,
        description: str | None = None,
        expected_revision: int | None = None,
    ) -> PromptRecord:
        tid = await self._tenant_id_tx(conn, tenant)
        etag = await self._put_content_tx(conn, tenant, content)
        now = now_ms()
        row = await self._prompt_row(conn, tid, name, lock=True)
        if row is None:
            if expected_revision not in (None, 0):
                raise _not_found(name)
            cur = await conn.execute(
                "INSERT INTO prompts(tenant_id, name, description, draft_etag, draft_revision, created_at, updated_at) "
                "VALUES (%s, %s, %s, %s, 1, %s, %s) ON CONFLICT (tenant_id, name) DO NOTHING RETURNING id",
                (tid, name, description or "", etag, now, now),
            )
            if await cur.fetchone() is None:  # another server created it a moment ago: save over it
                return await self._save_draft_tx(conn, tenant, name, content, description, expected_revision)
        else:
            if expected_revision is not None and expected_revision != row["draft_revision"]:
                raise Conflict(
                    f"the draft of {name!r} is at revision {row['draft_revision']}, not "
                    f"{expected_revision}: someone saved it since; reload it and reapply your change",
                    {"prompt": name, "draftRevision": row["draft_revision"]},
                )
            new_description = row["description"] if description is None else description
            if etag != row["draft_etag"] or new_description != row["description"]:
                await conn.execute(
                    "UPDATE prompts SET draft_etag = %s, description = %s, "
                    "draft_revision = draft_revision + 1, updated_at = %s WHERE id = %s",
                    (etag, new_description, now, row["id"]),
                )
        rec = await self._load_prompt(conn, tid, name)
        assert rec is not None
        return rec

    async def publish(
        self,
        tenant: str,
        name: str,
        label: str,
        note: str,
        *,
        expected_etag: str | None = None,
        gate: GateRecord | None = None,
    ) -> PromptRecord:
        """Publish the draft as a version and point ``label`` at it (see ``SqliteStore.publish``). The
        prompt's row is locked first: the etag check and the publish see the same draft. ``gate`` (what let
        the draft through its gate: a passing replay or an override) is recorded on the version in the same
        transaction."""

        async def run(conn: AsyncConnection[Any]) -> PromptRecord:
            tid = await self._tenant_id_tx(conn, tenant)
            row = await self._prompt_row(conn, tid, name, lock=True)
            if row is None:
                raise _not_found(name)
            pid, etag = row["id"], row["draft_etag"]
            if expected_etag is not None and expected_etag != etag:
                raise PreconditionFailed(
                    f"the draft of {name!r} is no longer the one you expected (its etag is now {etag!r}, revision "
                    f"{row['draft_revision']}); nothing was published. get_prompt shows the draft as it is: check "
                    "it, then publish again with its etag",
                    {"prompt": name, "draftEtag": etag, "draftRevision": row["draft_revision"]},
                )
            cur = await conn.execute(
                "SELECT l.version, v.etag FROM prompt_labels l JOIN prompt_versions v "
                "ON v.prompt_id = l.prompt_id AND v.version = l.version WHERE l.prompt_id = %s AND l.label = %s",
                (pid, label),
            )
            current = await cur.fetchone()
            if current is not None and current["etag"] == etag:
                raise Conflict(
                    f"nothing to publish: the draft of {name!r} equals version {current['version']}, which "
                    f"{label!r} already points at; edit the draft first",
                    {"prompt": name, "version": current["version"]},
                )
            cur = await conn.execute(
                "SELECT version FROM prompt_versions WHERE prompt_id = %s AND etag = %s", (pid, etag)
            )
            existing = await cur.fetchone()
            now = now_ms()
            if existing is not None:
                version = existing["version"]  # the same content never becomes two versions
            else:
                cur = await conn.execute(
                    "SELECT coalesce(max(version), 0) + 1 AS v FROM prompt_versions WHERE prompt_id = %s", (pid,)
                )
                got = await cur.fetchone()
                assert got is not None
                version = got["v"]
                await conn.execute(
                    "INSERT INTO prompt_versions(prompt_id, version, etag, note, created_at) VALUES (%s,%s,%s,%s,%s)",
                    (pid, version, etag, note, now),
                )
            await _set_label(conn, pid, label, version, current["version"] if current else None, note, now)
            if gate is not None:
                await record_version_gate(conn, tid, name, version, gate, now)
            rec = await self._load_prompt(conn, tid, name)
            assert rec is not None
            return rec

        return await self._write(run)

    async def move_label(self, tenant: str, name: str, label: str, version: int, note: str) -> PromptRecord:
        async def run(conn: AsyncConnection[Any]) -> PromptRecord:
            tid = await self._tenant_id_tx(conn, tenant)
            row = await self._prompt_row(conn, tid, name, lock=True)
            if row is None:
                raise _not_found(name)
            pid = row["id"]
            cur = await conn.execute(
                "SELECT 1 FROM prompt_versions WHERE prompt_id = %s AND version = %s", (pid, version)
            )
            if await cur.fetchone() is None:
                raise NotFound(
                    f"prompt {name!r} has no version {version}: get_prompt lists its versions",
                    {"prompt": name, "version": version},
                )
            cur = await conn.execute(
                "SELECT version FROM prompt_labels WHERE prompt_id = %s AND label = %s", (pid, label)
            )
            current = await cur.fetchone()
            if current is None or current["version"] != version:
                await _set_label(conn, pid, label, version, current["version"] if current else None, note, now_ms())
            rec = await self._load_prompt(conn, tid, name)
            assert rec is not None
            return rec

        return await self._write(run)

    async def label_history(self, tenant: str, name: str) -> list[LabelMove]:
        tid = await self._tenant_id(tenant)
        if tid is None:
            return []
        rows = await self._fetchall(
            "SELECT h.label, h.version, h.previous_version, h.note, h.created_at FROM prompt_label_history h "
            "JOIN prompts p ON p.id = h.prompt_id WHERE p.tenant_id = %s AND p.name = %s ORDER BY h.id",
            (tid, name),
        )
        return [LabelMove(r["label"], r["version"], r["previous_version"], r["note"], r["created_at"]) for r in rows]

    async def version_for_etag(self, tenant: str, name: str, etag: str) -> int | None:
        tid = await self._tenant_id(tenant)
        if tid is None:
            return None
        row = await self._fetchone(
            "SELECT v.version FROM prompt_versions v JOIN prompts p ON p.id = v.prompt_id "
            "WHERE p.tenant_id = %s AND p.name = %s AND v.etag = %s",
            (tid, name, etag),
        )
        return int(row["version"]) if row else None

    # -- sessions -----------------------------------------------------------------------------------

    async def create_session(self, tenant: str, record: SessionRecord) -> None:
        async def run(conn: AsyncConnection[Any]) -> None:
            tid = await self._tenant_id_tx(conn, tenant)
            await conn.execute(
                "INSERT INTO sessions(tenant_id, id, trace_id, data, revision, created_at, updated_at) "
                "VALUES (%s,%s,%s,%s,%s,%s,%s)",
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
            "SELECT id, trace_id, data, revision, created_at, updated_at FROM sessions "
            "WHERE tenant_id = %s AND id = %s",
            (tid, session_id),
        )
        if row is None:
            return None
        return SessionRecord(
            id=row["id"],
            trace_id=row["trace_id"],
            session=PlaygroundSession.from_json(row["data"]),
            revision=row["revision"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    async def session_runs(self, tenant: str, session_id: str) -> list[SessionRun]:
        """A session's runs, oldest first, without building their traces (see the SQLite store)."""
        tid = await self._tenant_id(tenant)
        if tid is None:
            return []

        async def run(conn: AsyncConnection[Any]) -> list[SessionRun]:
            cur = await conn.execute(
                "SELECT t.created_ms << 12 AS seq, t.id, t.manifest_id, t.model_provider, t.model_name, t.status, "
                "t.input_tokens, t.output_tokens, t.total_tokens, t.cost, t.duration, t.body FROM traces t "
                "WHERE t.tenant_id = %s AND t.session_id = %s AND t.source = 'playground' ORDER BY t.created_ms, t.n",
                (tid, session_id),
            )
            rows = await cur.fetchall()
            etags: dict[int, str | None] = {}
            for manifest_id in {r["manifest_id"] for r in rows}:
                found = await conn.execute("SELECT data FROM manifests WHERE id = %s", (manifest_id,))
                blob = await found.fetchone()
                etags[manifest_id] = manifest_etag_of(bytes(blob["data"])) if blob else None
            return [session_run({**r, "body": bytes(r["body"])}, etags.__getitem__) for r in rows]

        return await self._read(run)

    async def list_sessions(self, tenant: str, limit: int) -> list[SessionRecord]:
        tid = await self._tenant_id(tenant)
        if tid is None:
            return []
        rows = await self._fetchall(
            "SELECT s.id, s.trace_id, s.data, s.revision, s.created_at, s.updated_at, "
            "(SELECT count(*) FROM traces t WHERE t.tenant_id = s.tenant_id AND t.session_id = s.id) AS runs "
            "FROM sessions s WHERE s.tenant_id = %s ORDER BY s.updated_at DESC LIMIT %s",
            (tid, limit),
        )
        return [
            SessionRecord(
                id=r["id"],
                trace_id=r["trace_id"],
                session=PlaygroundSession.from_json(r["data"]),
                revision=r["revision"],
                created_at=r["created_at"],
                updated_at=r["updated_at"],
                run_count=r["runs"],
            )
            for r in rows
        ]

    async def update_session(self, tenant: str, record: SessionRecord, expected_revision: int) -> bool:
        """Compare-and-set on the session's revision; False when it moved (nothing is written)."""

        async def run(conn: AsyncConnection[Any]) -> bool:
            tid = await self._tenant_id_tx(conn, tenant)
            cur = await conn.execute(
                "UPDATE sessions SET data = %s, revision = %s, updated_at = %s "
                "WHERE tenant_id = %s AND id = %s AND revision = %s",
                (record.session.to_json(), record.revision, record.updated_at, tid, record.id, expected_revision),
            )
            return cur.rowcount == 1

        return await self._write(run)

    async def delete_session(self, tenant: str, session_id: str) -> bool:
        async def run(conn: AsyncConnection[Any]) -> bool:
            tid = await self._tenant_id_tx(conn, tenant)
            cur = await conn.execute("DELETE FROM sessions WHERE tenant_id = %s AND id = %s", (tid, session_id))
            return cur.rowcount == 1

        return await self._write(run)

    async def expire_sessions(self, idle_before_ms: int) -> int:
        async def run(conn: AsyncConnection[Any]) -> int:
            cur = await conn.execute("DELETE FROM sessions WHERE updated_at < %s", (idle_before_ms,))
            return cur.rowcount

        return await self._write(run)

    # -- API tokens ---------------------------------------------------------------------------------

    async def create_token(self, tenant: str, name: str, token_hash: bytes) -> TokenRecord:
        async def run(conn: AsyncConnection[Any]) -> TokenRecord:
            tid = await self._tenant_id_tx(conn, tenant)
            rec = TokenRecord(id=new_id(), tenant=tenant, name=name, created_at=now_ms(), revoked_at=None)
            await conn.execute(
                "INSERT INTO api_tokens(id, tenant_id, name, token_hash, created_at) VALUES (%s,%s,%s,%s,%s)",
                (rec.id, tid, name, token_hash, rec.created_at),
            )
            return rec

        return await self._write(run)

    async def list_tokens(self, tenant: str | None) -> list[TokenRecord]:
        sql = (
            "SELECT a.id, t.name AS tenant, a.name, a.created_at, a.revoked_at FROM api_tokens a "
            "JOIN tenants t ON t.id = a.tenant_id"
        )
        params: tuple[Any, ...] = ()
        if tenant is not None:
            sql += " WHERE t.name = %s"
            params = (tenant,)
        rows = await self._fetchall(sql + " ORDER BY a.created_at, a.id", params)
        return [
            TokenRecord(
                id=r["id"], tenant=r["tenant"], name=r["name"], created_at=r["created_at"], revoked_at=r["revoked_at"]
            )
            for r in rows
        ]

    async def revoke_token(self, token_id: str) -> bool:
        async def run(conn: AsyncConnection[Any]) -> bool:
            cur = await conn.execute(
                "UPDATE api_tokens SET revoked_at = %s WHERE id = %s AND revoked_at IS NULL", (now_ms(), token_id)
            )
            return cur.rowcount == 1

        return await self._write(run)

    async def tenant_for_token(self, token_hash: bytes) -> str | None:
        """The tenant of an unrevoked token, looked up by hash."""
        row = await self._fetchone(
            "SELECT t.name FROM api_tokens a JOIN tenants t ON t.id = a.tenant_id "
            "WHERE a.token_hash = %s AND a.revoked_at IS NULL",
            (token_hash,),
        )
        return str(row["name"]) if row else None


async def _set_label(
    conn: AsyncConnection[Any], pid: int, label: str, version: int, previous: int | None, note: str, now: int
) -> None:
    await conn.execute(
        "INSERT INTO prompt_labels(prompt_id, label, version, updated_at) VALUES (%s,%s,%s,%s) "
        "ON CONFLICT (prompt_id, label) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at",
        (pid, label, version, now),
    )
    await conn.execute(
        "INSERT INTO prompt_label_history(prompt_id, label, version, previous_version, note, created_at) "
        "VALUES (%s,%s,%s,%s,%s,%s)",
        (pid, label, version, previous, note, now),
    )

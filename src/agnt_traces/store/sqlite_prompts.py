"""Prompt registry on SQLite: drafts with revisions, immutable versions, labels and their history."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from ..errors import Conflict, NotFound, PreconditionFailed
from ..golden_models import GateRecord
from ..ids import now_ms
from ..models import PromptContent
from ..playground_session import PlaygroundSession
from ..prompt_records import LabelMove, PromptPick, PromptRecord, PromptVersion
from .base import SessionSave
from .picks import pick_query, picked
from .sqlite_base import SqliteBase

__all__ = ["PromptsMixin"]


def _not_found(name: str) -> NotFound:
    return NotFound(
        f"prompt {name!r} not found: list_prompts shows the prompts of this tenant; upsert_prompt creates one",
        {"prompt": name},
    )


class PromptsMixin(SqliteBase):
    def _prompt_row(self, db: sqlite3.Connection, tid: int, name: str) -> sqlite3.Row | None:
        cur = db.execute(
            "SELECT id, name, description, draft_etag, draft_revision, created_at, updated_at "
            "FROM prompts WHERE tenant_id = ? AND name = ?",
            (tid, name),
        )
        cur.row_factory = sqlite3.Row
        row: sqlite3.Row | None = cur.fetchone()
        return row

    def _load_prompt(self, db: sqlite3.Connection, tid: int, name: str) -> PromptRecord | None:
        row = self._prompt_row(db, tid, name)
        if row is None:
            return None
        (content_json,) = db.execute(
            "SELECT content FROM contents WHERE tenant_id = ? AND etag = ?", (tid, row["draft_etag"])
        ).fetchone()
        versions = [
            PromptVersion(v, e, n, c)
            for v, e, n, c in db.execute(
                "SELECT version, etag, note, created_at FROM prompt_versions WHERE prompt_id = ? ORDER BY version",
                (row["id"],),
            )
        ]
        labels = dict(
            db.execute("SELECT label, version FROM prompt_labels WHERE prompt_id = ? ORDER BY label", (row["id"],))
        )
        return PromptRecord(
            name=row["name"],
            description=row["description"],
            draft=PromptContent.model_validate_json(content_json),
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

        def run(db: sqlite3.Connection) -> list[PromptRecord]:
            names = [r[0] for r in db.execute("SELECT name FROM prompts WHERE tenant_id = ? ORDER BY name", (tid,))]
            return [rec for n in names if (rec := self._load_prompt(db, tid, n)) is not None]

        return await self._read(run)

    async def get_prompt(self, tenant: str, name: str) -> PromptRecord | None:
        tid = await self._tenant_id(tenant)
        if tid is None:
            return None
        return await self._read(lambda db: self._load_prompt(db, tid, name))

    async def pick_prompt(self, tenant: str, name: str, *, label: str | None, version: int | None) -> PromptPick | None:
        """What ``label``, ``version`` or (neither) the draft selects of the prompt; None when the prompt, the
        label or the version does not exist. Usually read on the event loop (a point read, see ``_read_now``)."""
        tid = await self._tenant_id(tenant)
        if tid is None:
            return None
        query = pick_query(tid, name, label, version)
        if query is None:
            return None
        sql, params = query
        rows = self._read_now(sql, params)
        if rows is None:
            rows = await self._read(lambda db: db.execute(sql, params).fetchall())
        return picked(name, rows[0] if rows else None)

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
        return await self._write(self._save_draft_sync, tenant, name, content, description, expected_revision)

    async def save_drafts(self, tenant: str, drafts: list[tuple[str, PromptContent, str | None]]) -> list[PromptRecord]:
        """Save several drafts ``(name, content, description)`` in one transaction: all or nothing."""

        def run(db: sqlite3.Connection) -> list[PromptRecord]:
            return [
                self._save_draft_sync(db, tenant, name, content, description) for name, content, description in drafts
            ]

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
        """Save a playground session's content to a prompt's draft and update the session, in one transaction.

        The session must still exist at ``session_revision`` (compare-and-set): if it was deleted the answer
        is ``"session_gone"``, if it changed ``"session_moved"``, and in both cases nothing is written.
        ``update_session(session, saved)`` gives the session's new document once the draft is saved.
        A draft that moved past ``expected_revision`` is a ``Conflict`` and nothing is written either.
        """

        def run(db: sqlite3.Connection) -> SessionSave:
            tid = self._tenant_id_sync(db, tenant)
            row = db.execute(
                "SELECT data, revision FROM sessions WHERE tenant_id = ? AND id = ?", (tid, session_id)
            ).fetchone()
            if row is None:
                return SessionSave("session_gone")
            if row[1] != session_revision:
                return SessionSave("session_moved")
            saved = self._save_draft_sync(db, tenant, name, content, None, expected_revision)
            session = update_session(PlaygroundSession.from_json(row[0]), saved)
            db.execute(
                "UPDATE sessions SET data = ?, revision = ?, updated_at = ? WHERE tenant_id = ? AND id = ?",
                (session.to_json(), session_revision + 1, now_ms(), tid, session_id),
            )
            return SessionSave("saved", saved, session_revision + 1)

        return await self._write(run)

    def _save_draft_sync(
        self,
        db: sqlite3.Connection,
        tenant: str,
        name: str,
        content: PromptContent,
        description: str | None = None,
        expected_revision: int | None = None,
    ) -> PromptRecord:
        tid = self._tenant_id_sync(db, tenant)
        etag = self._put_content_sync(db, tenant, content)
        now = now_ms()
        row = self._prompt_row(db, tid, name)
        if row is None:
            if expected_revision not in (None, 0):
                raise _not_found(name)
            db.execute(
                "INSERT INTO prompts(tenant_id, name, description, draft_etag, draft_revision, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, 1, ?, ?)",
                (tid, name, description or "", etag, now, now),
            )
        else:
            if expected_revision is not None and expected_revision != row["draft_revision"]:
                raise Conflict(
                    f"the draft of {name!r} is at revision {row['draft_revision']}, not "
                    f"{expected_revision}: someone saved it since; reload it and reapply your change",
                    {"prompt": name, "draftRevision": row["draft_revision"]},
                )
            new_description = row["description"] if description is None else description
            if etag != row["draft_etag"] or new_description != row["description"]:
                db.execute(
                    "UPDATE prompts SET draft_etag = ?, description = ?, "
                    "draft_revision = draft_revision + 1, updated_at = ? WHERE id = ?",
                    (etag, new_description, now, row["id"]),
                )
        rec = self._load_prompt(db, tid, name)
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
        """Publish the draft as a version and point ``label`` at it. With ``expected_etag``, a draft whose
        etag differs is a ``PreconditionFailed`` (code ``conflict``) and nothing changes: the check and the
        publish are one transaction, so the note always goes with the content the caller saw. ``gate``
        (what let the draft through its gate: a passing replay or an override) is recorded on the version
        in the same transaction."""

        def run(db: sqlite3.Connection) -> PromptRecord:
            tid = self._tenant_id_sync(db, tenant)
            row = self._prompt_row(db, tid, name)
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
            current = db.execute(
                "SELECT l.version, v.etag FROM prompt_labels l JOIN prompt_versions v "
                "ON v.prompt_id = l.prompt_id AND v.version = l.version WHERE l.prompt_id = ? AND l.label = ?",
                (pid, label),
            ).fetchone()
            if current is not None and current[1] == etag:
                raise Conflict(
                    f"nothing to publish: the draft of {name!r} equals version {current[0]}, which "
                    f"{label!r} already points at; edit the draft first",
                    {"prompt": name, "version": current[0]},
                )
            existing = db.execute(
                "SELECT version FROM prompt_versions WHERE prompt_id = ? AND etag = ?", (pid, etag)
            ).fetchone()
            now = now_ms()
            if existing is not None:
                version = existing[0]  # the same content never becomes two versions
            else:
                (version,) = db.execute(
                    "SELECT coalesce(max(version), 0) + 1 FROM prompt_versions WHERE prompt_id = ?", (pid,)
                ).fetchone()
                db.execute(
                    "INSERT INTO prompt_versions(prompt_id, version, etag, note, created_at) VALUES (?,?,?,?,?)",
                    (pid, version, etag, note, now),
                )
            self._set_label(db, pid, label, version, current[0] if current else None, note, now)
            if gate is not None:
                db.execute(
                    "INSERT INTO version_gates(tenant_id, prompt_name, version, data, created_at) VALUES (?,?,?,?,?) "
                    "ON CONFLICT DO UPDATE SET data = excluded.data",
                    (tid, name, version, gate.model_dump_json(), now),
                )
            rec = self._load_prompt(db, tid, name)
            assert rec is not None
            return rec

        return await self._write(run)

    async def move_label(self, tenant: str, name: str, label: str, version: int, note: str) -> PromptRecord:
        def run(db: sqlite3.Connection) -> PromptRecord:
            tid = self._tenant_id_sync(db, tenant)
            row = self._prompt_row(db, tid, name)
            if row is None:
                raise _not_found(name)
            pid = row["id"]
            if (
                db.execute(
                    "SELECT 1 FROM prompt_versions WHERE prompt_id = ? AND version = ?", (pid, version)
                ).fetchone()
                is None
            ):
                raise NotFound(
                    f"prompt {name!r} has no version {version}: get_prompt lists its versions",
                    {"prompt": name, "version": version},
                )
            current = db.execute(
                "SELECT version FROM prompt_labels WHERE prompt_id = ? AND label = ?", (pid, label)
            ).fetchone()
            if current is None or current[0] != version:
                self._set_label(db, pid, label, version, current[0] if current else None, note, now_ms())
            rec = self._load_prompt(db, tid, name)
            assert rec is not None
            return rec

        return await self._write(run)

    @staticmethod
    def _set_label(
        db: sqlite3.Connection, pid: int, label: str, version: int, previous: int | None, note: str, now: int
    ) -> None:
        db.execute(
            "INSERT INTO prompt_labels(prompt_id, label, version, updated_at) VALUES (?,?,?,?) "
            "ON CONFLICT(prompt_id, label) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at",
            (pid, label, version, now),
        )
        db.execute(
            "INSERT INTO prompt_label_history(prompt_id, label, version, previous_version, note, created_at) "
            "VALUES (?,?,?,?,?,?)",
            (pid, label, version, previous, note, now),
        )

    async def label_history(self, tenant: str, name: str) -> list[LabelMove]:
        tid = await self._tenant_id(tenant)
        if tid is None:
            return []
        rows = await self._fetchall(
            "SELECT h.label, h.version, h.previous_version, h.note, h.created_at FROM prompt_label_history h "
            "JOIN prompts p ON p.id = h.prompt_id WHERE p.tenant_id = ? AND p.name = ? ORDER BY h.id",
            (tid, name),
        )
        return [LabelMove(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    async def version_for_etag(self, tenant: str, name: str, etag: str) -> int | None:
        tid = await self._tenant_id(tenant)
        if tid is None:
            return None
        row = await self._fetchone(
            "SELECT v.version FROM prompt_versions v JOIN prompts p ON p.id = v.prompt_id "
            "WHERE p.tenant_id = ? AND p.name = ? AND v.etag = ?",
            (tid, name, etag),
        )
        return int(row[0]) if row else None

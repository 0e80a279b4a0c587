"""CLI commands beyond serving and listing: prompt files and API tokens."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .app import open_app
from .cli import _run, _settings
from .store.base import PromptRecord

__all__ = [
    "cmd_prompts_export",
    "cmd_prompts_import",
    "cmd_prompts_list",
    "cmd_token_create",
    "cmd_token_list",
    "cmd_token_revoke",
]


def cmd_prompts_import(args: argparse.Namespace) -> int:
    """All or nothing: every file is checked first, then all drafts are written in one transaction."""
    from .promptfiles import load_prompt_dir

    settings = _settings(args)
    loaded = load_prompt_dir(Path(args.dir), settings.policy())  # raises naming every bad file; nothing written

    async def run() -> int:
        async with open_app(settings) as app:
            before = {name: await app.store.get_prompt(settings.tenant, name) for name, _, _ in loaded}
            saved = await app.store.save_drafts(settings.tenant, [(n, c, d) for n, d, c in loaded])
            for rec in saved:
                old = before[rec.name]
                state = (
                    "created"
                    if old is None
                    else ("unchanged" if old.draft_revision == rec.draft_revision else "updated")
                )
                print(f"{rec.name}: {state} (draft revision {rec.draft_revision}, etag {rec.draft_etag[:12]})")
        return 0

    return _run(run)


def cmd_prompts_export(args: argparse.Namespace) -> int:
    from .promptfiles import dump_prompt

    settings = _settings(args)
    out = Path(args.dir)

    records: list[PromptRecord] = []

    async def load() -> int:
        nonlocal records
        async with open_app(settings) as app:
            records = await app.store.list_prompts(settings.tenant)
        return 0

    status = _run(load)
    out.mkdir(parents=True, exist_ok=True)
    for rec in records:
        (out / f"{rec.name}.yaml").write_text(dump_prompt(rec.name, rec.description, rec.draft), encoding="utf-8")
        print(f"{rec.name} → {out / (rec.name + '.yaml')}")
    return status


def cmd_prompts_list(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def run() -> int:
        async with open_app(settings) as app:
            data = await app.prompts.list(settings.tenant)
        print(json.dumps(data, indent=2))
        return 0

    return _run(run)


def cmd_token_create(args: argparse.Namespace) -> int:
    from .tokens import hash_token, new_token

    settings = _settings(args)

    async def run() -> int:
        token = new_token()
        async with open_app(settings) as app:
            rec = await app.store.create_token(settings.tenant, args.name, hash_token(token))
        print(token)
        import sys

        print(f"token {rec.id} for tenant {rec.tenant!r}; it is shown only this once", file=sys.stderr)
        return 0

    return _run(run)


def cmd_token_list(args: argparse.Namespace) -> int:
    from .ids import ms_to_rfc3339

    settings = _settings(args)

    async def run() -> int:
        async with open_app(settings) as app:
            tokens = await app.store.list_tokens(settings.tenant if args.tenant else None)
        for t in tokens:
            state = f"revoked {ms_to_rfc3339(t.revoked_at)}" if t.revoked_at else "active"
            print(f"{t.id}  tenant={t.tenant}  name={t.name}  created={ms_to_rfc3339(t.created_at)}  {state}")
        return 0

    return _run(run)


def cmd_token_revoke(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def run() -> int:
        async with open_app(settings) as app:
            ok = await app.store.revoke_token(args.token_id)
        if not ok:
            from .errors import NotFound

            raise NotFound(f"no active token {args.token_id!r}: token list shows the ids")
        print(f"revoked {args.token_id}")
        return 0

    return _run(run)

"""``agnt-traces prompts list|import|export``: the prompts of a tenant, and the prompts folder."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from .common import run_async, settings_of
from .output import Column, print_json, short_time, table

if TYPE_CHECKING:
    from ..prompt_records import PromptRecord

__all__ = ["cmd_prompts_export", "cmd_prompts_import", "cmd_prompts_list"]


def cmd_prompts_import(args: argparse.Namespace) -> int:
    """All or nothing: every file is checked first, then all drafts are written in one transaction."""
    from ..app import open_app
    from ..promptfiles import load_prompt_dir

    settings = settings_of(args)
    loaded = load_prompt_dir(Path(args.dir), settings.policy())  # raises naming every bad file; nothing written

    async def run() -> int:
        async with open_app(settings) as app:
            imported = await app.prompts.import_drafts(settings.tenant, loaded)
        for done in imported:
            print(f"{done.name}: {done.state} (draft revision {done.draft_revision}, etag {done.draft_etag[:12]})")
        return 0

    return run_async(run)


def cmd_prompts_export(args: argparse.Namespace) -> int:
    from ..app import open_app
    from ..promptfiles import dump_prompt

    settings = settings_of(args)
    out = Path(args.dir)
    records: list[PromptRecord] = []

    async def load() -> int:
        nonlocal records
        async with open_app(settings) as app:
            records = await app.prompts.records(settings.tenant)
        return 0

    status = run_async(load)
    out.mkdir(parents=True, exist_ok=True)
    for rec in records:
        (out / f"{rec.name}.yaml").write_text(dump_prompt(rec.name, rec.description, rec.draft), encoding="utf-8")
        print(f"{rec.name} → {out / (rec.name + '.yaml')}")
    return status


PROMPT_COLUMNS: list[Column] = [
    ("NAME", lambda p: p["name"]),
    ("LATEST", lambda p: "-" if p["latestVersion"] is None else f"v{p['latestVersion']}"),
    ("LABELS", lambda p: ", ".join(f"{k}=v{v}" for k, v in sorted(p["labels"].items())) or "-"),
    ("DRAFT REV", lambda p: str(p["draftRevision"])),
    ("MODEL", lambda p: p["model"]),
    ("UPDATED", lambda p: short_time(p["updatedAt"])),
    ("DESCRIPTION", lambda p: (p["description"] or "")[:60]),
]


def cmd_prompts_list(args: argparse.Namespace) -> int:
    from ..app import open_app

    settings = settings_of(args)

    async def run() -> int:
        async with open_app(settings) as app:
            data = (await app.prompts.list(settings.tenant)).render()
        if args.json:
            print_json(data)
        else:
            print(table(data["prompts"], PROMPT_COLUMNS, "no prompts yet: agnt-traces prompts import prompts/"))
        return 0

    return run_async(run)

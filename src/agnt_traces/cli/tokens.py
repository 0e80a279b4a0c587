"""``agnt-traces token create|list|revoke``: API tokens for the HTTP server."""

from __future__ import annotations

import argparse
import sys

from .common import run_async, settings_of

__all__ = ["cmd_token_create", "cmd_token_list", "cmd_token_revoke"]


def cmd_token_create(args: argparse.Namespace) -> int:
    from ..app import open_app

    settings = settings_of(args)

    async def run() -> int:
        async with open_app(settings) as app:
            created = await app.tokens.create(settings.tenant, args.name)
        print(created.token)
        print(f"token {created.id} for tenant {created.tenant!r}; it is shown only this once", file=sys.stderr)
        return 0

    return run_async(run)


def cmd_token_list(args: argparse.Namespace) -> int:
    from ..app import open_app

    settings = settings_of(args)

    async def run() -> int:
        async with open_app(settings) as app:
            tokens = await app.tokens.list(settings.tenant if args.tenant else None)
        for t in tokens:
            state = f"revoked {t.revoked_at}" if t.revoked_at else "active"
            print(f"{t.id}  tenant={t.tenant}  name={t.name}  created={t.created_at}  {state}")
        return 0

    return run_async(run)


def cmd_token_revoke(args: argparse.Namespace) -> int:
    from ..app import open_app

    settings = settings_of(args)

    async def run() -> int:
        async with open_app(settings) as app:
            await app.tokens.revoke(args.token_id)
        print(f"revoked {args.token_id}")
        return 0

    return run_async(run)

"""``agnt-traces token create|list|revoke``: API tokens for the HTTP server."""

from __future__ import annotations

import argparse
import sys

from .common import run_async, settings_of

__all__ = ["cmd_token_create", "cmd_token_list", "cmd_token_revoke"]


def cmd_token_create(args: argparse.Namespace) -> int:
    from ..app import open_app
    from ..tokens import hash_token, new_token

    settings = settings_of(args)

    async def run() -> int:
        token = new_token()
        async with open_app(settings) as app:
            rec = await app.store.create_token(settings.tenant, args.name, hash_token(token))
        print(token)
        print(f"token {rec.id} for tenant {rec.tenant!r}; it is shown only this once", file=sys.stderr)
        return 0

    return run_async(run)


def cmd_token_list(args: argparse.Namespace) -> int:
    from ..app import open_app
    from ..ids import ms_to_rfc3339

    settings = settings_of(args)

    async def run() -> int:
        async with open_app(settings) as app:
            tokens = await app.store.list_tokens(settings.tenant if args.tenant else None)
        for t in tokens:
            state = f"revoked {ms_to_rfc3339(t.revoked_at)}" if t.revoked_at else "active"
            print(f"{t.id}  tenant={t.tenant}  name={t.name}  created={ms_to_rfc3339(t.created_at)}  {state}")
        return 0

    return run_async(run)


def cmd_token_revoke(args: argparse.Namespace) -> int:
    from ..app import open_app
    from ..errors import NotFound

    settings = settings_of(args)

    async def run() -> int:
        async with open_app(settings) as app:
            ok = await app.store.revoke_token(args.token_id)
        if not ok:
            raise NotFound(f"no active token {args.token_id!r}: token list shows the ids")
        print(f"revoked {args.token_id}")
        return 0

    return run_async(run)

"""``agnt-traces replay NAME [--against draft]``: replay a prompt's golden cases and print the report; exit 1
when the gate fails (or, with no gate, when a required case fails or a case regresses), for CI."""

from __future__ import annotations

import argparse
import sys

from .common import run_async, settings_of
from .output import print_json

__all__ = ["cmd_replay"]


def cmd_replay(args: argparse.Namespace) -> int:
    from ..app import open_app

    settings = settings_of(args)

    async def run() -> int:
        async with open_app(settings) as app:
            started = await app.golden.run(
                settings.tenant,
                args.name,
                against=args.against,
                models=args.models or None,
                trials=args.trials,
                budget_usd=args.budget_usd,
                fresh=args.fresh,
            )
            view = await app.golden.wait(settings.tenant, started.id)
            if args.json:
                print_json((await app.golden.get(settings.tenant, started.id, max_cases=200)).render())
            else:
                print(await app.golden.report_text(settings.tenant, started.id))
            if view.status == "error":
                print(f"error: {view.error.message if view.error else 'unknown'}", file=sys.stderr)
            return 0 if view.status == "passed" else 1

    return run_async(run)

"""``agnt-traces migrate-store --from A --to B``: copy a whole store (SQLite ⇄ PostgreSQL), then prove it."""

from __future__ import annotations

import argparse
import os
import sys

from .common import run_async

__all__ = ["cmd_migrate_store"]


def cmd_migrate_store(args: argparse.Namespace) -> int:
    from ..errors import InvalidArgument
    from ..store import describe_url, open_store
    from ..store.transfer import copy_all, verify

    if args.source == args.target:
        raise InvalidArgument("--from and --to name the same database: name two different ones")
    if args.batch < 1:
        raise InvalidArgument("--batch must be at least 1")
    shown_from, shown_to = describe_url(args.source), describe_url(args.target)

    async def prepare() -> int:
        for db in (args.source, args.target):  # creates and migrates both, as a server would
            store = await open_store(db)
            await store.close()
        return 0

    if run_async(prepare) != 0:
        return 2
    print(f"copying {shown_from} → {shown_to} (running this again continues where it stopped)", file=sys.stderr)
    delay = float(os.environ.get("AGNT_TRACES_MIGRATE_BATCH_DELAY_MS", "0") or 0) / 1000
    copy_all(
        args.source,
        args.target,
        batch=args.batch,
        progress=lambda line: print(line, file=sys.stderr),
        batch_delay_s=delay,
    )
    checks = verify(args.source, args.target)
    width = max(len(c.table) for c in checks)
    print(f"{'table':<{width}}  {'source':>9}  {'target':>9}  {'source digest':<16}  {'target digest':<16}  check")
    for c in checks:
        print(
            f"{c.table:<{width}}  {c.source_count:>9}  {c.target_count:>9}  {c.source_digest:<16}  "
            f"{c.target_digest:<16}  {'ok' if c.ok else 'DIFFERENT'}"
        )
    bad = [c.table for c in checks if not c.ok]
    if bad:
        print(f"error: the copy differs from the source in: {', '.join(bad)}", file=sys.stderr)
        return 1
    print(f"verified: every table of {shown_to} has the same rows as {shown_from}", file=sys.stderr)
    return 0

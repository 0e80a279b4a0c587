"""Tenant isolation under attack: what a hostile tenant's requests get, and what the victim tenant feels meanwhile.

    python3 run.py bench bench_isolation.py [--corpus 20000] [--attacks a,b,...] [--flood 2000]

Starts ``agnt-traces serve --http`` on a fresh database (127.0.0.1, a fake ``OPENAI_API_KEY``, and
``AGNT_TRACES_MODEL_ENDPOINTS`` listing only the honest local model server), two tenants with ``--corpus``
traces each, and the victim's probe process (its own list, get and ingest, continuously). Then, one after
the other: a baseline with no attack, and each attack (``tests/isolation.py`` describes them). Prints one
table: per attack, the outcome (status codes and error codes of the attacker's requests, the slowest one,
the attack's duration, requests that reached the evil model server) and the victim's p50/p99 latency of
list, get and ingest during it; then the server's RSS and whether it is alive.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))

import isolation as iso  # noqa: E402

ATTACKS = {
    "baseline": iso.baseline,
    "a-evil-endpoint": iso.attack_evil_endpoint,
    "b-heavy-templates": iso.attack_heavy_templates,
    "c-fts-prefixes": iso.attack_fts_prefix_flood,
    "d-slow-playground": iso.attack_slow_playground,
    "f-forged-cursors": iso.attack_forged_cursors,
    "g-bad-bodies": iso.attack_bad_bodies,
    "e-mcp-flood": iso.attack_mcp_session_flood,
}


def outcome_cell(o: iso.Outcome) -> str:
    codes = Counter(f"{s.status}{'/' + s.code if s.code else ''}" for s in o.steps)
    return ", ".join(f"{k}×{v}" for k, v in sorted(codes.items())) or "-"


def row(name: str, o: iso.Outcome, evil_hits: int) -> str:
    slowest = max((s.seconds for s in o.steps), default=0.0)
    cells = [f"{name:<20}", f"{o.seconds:>6.1f}", f"{slowest * 1000:>8.0f}", f"{evil_hits:>4}"]
    for op in iso.OPS:
        st = o.victim[op]
        cells.append(f"{st.p50 * 1000:>6.1f}/{st.p99 * 1000:>7.1f}")
    cells += [f"{o.rss_mb:>6.0f}", "yes" if o.alive else "NO ", outcome_cell(o)]
    return "  ".join(cells)


async def main(args: argparse.Namespace) -> int:
    chosen = args.attacks.split(",") if args.attacks else list(ATTACKS)
    if args.flood != 2000:
        ATTACKS["e-mcp-flood"] = iso.session_flood(args.flood)
    t0 = time.monotonic()
    with iso.Scenario(corpus=args.corpus) as scn:
        print(
            f"server {scn.url}; corpus {args.corpus} traces per tenant; set-up {time.monotonic() - t0:.1f} s; "
            f"RSS {scn.rss_start_mb:.0f} MB",
            flush=True,
        )
        header = (
            f"{'attack':<20}  {'secs':>6}  {'worst ms':>8}  {'evil':>4}  "
            + "  ".join(f"{op + ' p50/p99':>14}" for op in iso.OPS)
            + f"  {'RSS MB':>6}  alive  attacker's statuses"
        )
        lines = [header, "-" * len(header)]
        reports = []
        for name in chosen:
            before = len(scn.evil.requests)
            o = await scn.measure(name, ATTACKS[name], min_seconds=args.min_seconds)
            evil_hits = len(scn.evil.requests) - before
            lines.append(row(name, o, evil_hits))
            reports.append(o.report())
            print(lines[-1], flush=True)
        print("\n" + "\n".join(lines))
        print("\n" + "\n".join(reports))
        leaked = [r for r in scn.evil.requests if r.api_key == iso.SECRET]
        print(f"\nevil server: {len(scn.evil.requests)} requests, {len(leaked)} carried the operator's OPENAI_API_KEY")
        errors = scn.errors_logged()
        print(f"server log: {len(errors)} error lines" + (f"; first: {errors[0].strip()[:300]}" if errors else ""))
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", type=int, default=20_000, help="traces per tenant (default 20000)")
    p.add_argument("--attacks", default="", help="comma-separated subset of: " + ", ".join(ATTACKS))
    p.add_argument("--flood", type=int, default=2000, help="most MCP sessions the flood opens (default 2000)")
    p.add_argument("--min-seconds", type=float, default=3.0, help="repeat each attack for at least this long")
    raise SystemExit(asyncio.run(main(p.parse_args())))

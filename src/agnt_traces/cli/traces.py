"""``agnt-traces traces list|show`` and ``agnt-traces stats``."""

from __future__ import annotations

import argparse
import json
import textwrap
from typing import Any

from .common import run_async, settings_of
from .output import Column, money, print_json, short_time, table

__all__ = ["cmd_stats", "cmd_traces_list", "cmd_traces_show", "render_stats", "render_trace"]

TRACE_COLUMNS: list[Column] = [
    ("ID", lambda r: r["id"]),
    ("CREATED", lambda r: short_time(r["createdAt"])),
    ("PROMPT", lambda r: f"{r['promptName'] or '-'}" + (f"@v{r['promptVersion']}" if r["promptVersion"] else "")),
    ("MODEL", lambda r: r["model"]),
    ("STATUS", lambda r: r["status"]),
    ("TOKENS", lambda r: str(r["totalTokens"])),
    ("COST $", lambda r: money(r["cost"])),
    ("SECS", lambda r: "-" if r["duration"] is None else f"{r['duration']:.2f}"),
    ("OUTPUT", lambda r: r["outputPreview"][:48]),
]


def cmd_traces_list(args: argparse.Namespace) -> int:
    from ..app import open_app
    from ..services.queries import TraceQuery, validate_query

    settings = settings_of(args)
    fields = {k: v for k, v in vars(args).items() if k in TraceQuery.model_fields}
    query = validate_query(TraceQuery, fields)

    async def run() -> int:
        async with open_app(settings) as app:
            page = (await app.traces.list(settings.tenant, query)).render()
        if args.json:
            print_json(page)
        else:
            print(table(page["traces"], TRACE_COLUMNS, "no traces match"))
            if page["nextCursor"]:
                print(f"\nmore: --cursor {page['nextCursor']}")
        return 0

    return run_async(run)


def cmd_traces_show(args: argparse.Namespace) -> int:
    from ..app import open_app

    settings = settings_of(args)

    async def run() -> int:
        async with open_app(settings) as app:
            data = await app.traces.get_json(settings.tenant, args.trace_id)
        print_json(data) if args.json else print(render_trace(data))
        return 0

    return run_async(run)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _section(title: str, body: str) -> list[str]:
    return ["", f"{title}:", textwrap.indent(body.rstrip() or "(empty)", "  ")]


def render_trace(t: dict[str, Any]) -> str:
    """One trace for people: what ran, how it went, then the messages and the output in full."""
    model = t.get("model") or {}
    prompt = "-"
    if t.get("promptName"):
        prompt = t["promptName"] + (f"@v{t['promptVersion']}" if t.get("promptVersion") else " (draft)")
    lines = [
        f"trace     {t['id']}  {t['status']}  {short_time(t['createdAt'])}",
        f"prompt    {prompt}" + (f"  etag {t['etag'][:12]}" if t.get("etag") else ""),
        f"model     {model.get('provider', '?')}/{model.get('name', '?')}",
        f"tokens    {t['inputTokens']} in + {t['outputTokens']} out = {t['totalTokens']}"
        f"   cost $ {money(t.get('cost'))}   "
        + ("duration unknown" if t["duration"] is None else f"{t['duration']:.2f} s"),
        f"source    {t['source']}"
        + (f"   session {t['sessionId']}" if t.get("sessionId") else "")
        + (f"   parent {t['parentTraceId']}" if t.get("parentTraceId") else "")
        + (f"   tags {', '.join(t['tags'])}" if t.get("tags") else ""),
    ]
    if t.get("variables"):
        lines.append(
            "variables " + ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in t["variables"].items())
        )
    if t.get("error"):
        lines.append(f"error     {_text(t['error'])}")
    system = (t.get("manifest") or {}).get("system")
    if system:
        lines += _section("system", system)
    for message in t.get("messages") or []:
        lines += _section(str(message.get("role", "?")), _text(message.get("content", "")))
    lines += _section("output", t.get("output") or "")
    if t.get("toolCalls"):
        lines += _section("tool calls", json.dumps(t["toolCalls"], indent=2, ensure_ascii=False))
    return "\n".join(lines)


def cmd_stats(args: argparse.Namespace) -> int:
    from ..app import open_app
    from ..services.queries import StatsQuery, validate_query

    settings = settings_of(args)
    fields = {"group_by": args.group_by, "since": args.since, "until": args.until, "prompt_name": args.prompt_name}
    query = validate_query(StatsQuery, fields)

    async def run() -> int:
        async with open_app(settings) as app:
            data = (await app.traces.stats(settings.tenant, query)).render()  # as the trace_stats tool gives it
        print_json(data) if args.json else print(render_stats(data))
        return 0

    return run_async(run)


def _group_label(group: dict[str, Any]) -> str:
    if "provider" in group:
        return f"{group['provider']}/{group['model']}"
    if "status" in group:
        return str(group["status"])
    name = group.get("promptName") or "(no prompt)"
    if "promptVersion" in group:
        return name + (f"@v{group['promptVersion']}" if group["promptVersion"] else " (draft)")
    return name


STATS_COLUMNS: list[Column] = [
    ("COUNT", lambda g: str(g["count"])),
    ("ERRORS", lambda g: str(g["errors"])),
    ("ERROR %", lambda g: f"{100 * g['errorRate']:.1f}"),
    ("P50 S", lambda g: "-" if g["p50Duration"] is None else f"{g['p50Duration']:.2f}"),
    ("P95 S", lambda g: "-" if g["p95Duration"] is None else f"{g['p95Duration']:.2f}"),
    ("TOKENS", lambda g: str(g["totalTokens"])),
    ("COST $", lambda g: money(g["cost"])),
]


def render_stats(data: dict[str, Any]) -> str:
    window = f"since {data['since'] or 'the first trace'} until {data['until'] or 'now'}"
    cols: list[Column] = [(data["groupBy"].upper(), lambda g: _group_label(g["group"])), *STATS_COLUMNS]
    return f"traces by {data['groupBy']}, {window}\n" + table(data["groups"], cols, "no traces in this window")

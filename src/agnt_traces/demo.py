"""``agnt-traces demo``: the whole fix loop, step by step, through the MCP tools an agent would call.

Runs on the built-in offline model (``agnt-local/echo``: no key, no network) and a throwaway database
unless ``--db`` is given.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import textwrap
from pathlib import Path
from typing import Any

__all__ = ["cmd_demo", "run_demo"]

PROMPT = {
    "blocks": [
        {
            "id": "persona",
            "role": "system",
            "content": "You are the support assistant of {{ company_name }}. Answer in at most five sentences.",
        },
        {
            "id": "premium",
            "role": "system",
            "content": "This customer is on the premium plan: handle the request with priority.",
            "condition": "tier == 'premium'",
        },
    ],
    "variables": [
        {"name": "company_name", "type": "string", "required": True},
        {"name": "tier", "type": "string", "default": "standard"},
        {"name": "account_manager", "type": "string"},
    ],
    "model": {"provider": "agnt-local", "name": "echo", "params": {"max_tokens": 200}},
    "tools": [],
}
QUESTION = "My order #4417 arrived damaged. Can I get a replacement before Friday?"


class DemoFailed(Exception):
    pass


class Step:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self, title: str, call: str) -> None:
        self.n += 1
        print(f"\n\033[1m{self.n:>2}. {title}\033[0m\n    → {call}")


def show(text: str, indent: int = 6, limit: int = 1600) -> None:
    if len(text) > limit:
        text = text[:limit] + "\n…"
    print(textwrap.indent(text.rstrip(), " " * indent))


async def run_demo(db_path: str) -> dict[str, Any]:
    from mcp import Client

    from .config import Settings
    from .server.mcp import build_server

    step = Step()
    server = build_server(Settings(db_path=db_path, tenant="demo"))
    async with Client(server) as client:

        async def call(tool: str, **args: Any) -> dict[str, Any]:
            result = await client.call_tool(tool, args)
            data = result.structured_content or {}
            if result.is_error:
                raise DemoFailed(f"{tool} failed: {json.dumps(data)}")
            return data

        step("A prompt is published (v1)", "upsert_prompt(name='support-reply', …) + publish_prompt")
        await call("upsert_prompt", name="support-reply", content=PROMPT, description="Customer support answers")
        v1 = await call("publish_prompt", name="support-reply", note="first version")
        show(f"support-reply v{v1['version']} is production (etag {v1['etag'][:12]}…)")

        step("The app calls it; every call becomes a trace", "run_prompt(name='support-reply', variables, messages)")
        run = await call(
            "run_prompt",
            name="support-reply",
            variables={"company_name": "Acme", "tier": "premium"},
            messages=[{"role": "user", "content": QUESTION}],
            tags=["prod"],
        )
        first = run["trace"]
        await call(
            "run_prompt",
            name="support-reply",
            variables={"company_name": "Acme"},
            messages=[{"role": "user", "content": "How do I change my delivery address?"}],
        )
        show(
            f"trace {first['id']}: {first['totalTokens']} tokens, {first['duration'] * 1000:.1f} ms, "
            f"cost ${first['cost'] or 0:.6f}"
        )

        step("The agent finds the underperforming call", "list_traces(prompt_name='support-reply', query='damaged')")
        page = await call("list_traces", prompt_name="support-reply", query="damaged")
        for row in page["traces"]:
            show(f"{row['id']}  v{row['promptVersion']}  {row['model']}  {row['status']}  {row['outputPreview']}")

        step("…and reads exactly what the model saw", f"get_trace(trace_id='{first['id']}', fields=[…])")
        trace = await call("get_trace", trace_id=first["id"], fields=["manifest", "messages", "output", "variables"])
        show("system:    " + trace["manifest"]["system"].replace("\n", "\n           "))
        show("messages:  " + json.dumps(trace["messages"], ensure_ascii=False))
        show("variables: " + json.dumps(trace["variables"], ensure_ascii=False))
        show("output:    " + (trace["output"] or "").replace("\n", "\n           "))
        show("Premium, but no account manager was offered and nothing asks for the order number.")

        step("Open it in a playground", f"open_playground(trace_id='{first['id']}')")
        session = await call("open_playground", trace_id=first["id"])
        sid = session["id"]
        show(
            f"session {sid}: blocks {[b['id'] for b in session['blocks']]}, "
            f"model {session['models'][0]['provider']}/{session['models'][0]['name']}, "
            f"input messages {len(session['inputMessages'])}"
        )

        step("Edit a block, insert one, set a variable", "edit_block(update) + edit_block(insert) + update_variables")
        await call(
            "edit_block",
            session_id=sid,
            block_id="premium",
            content="This customer is on the premium plan: handle the request with priority"
            "{% if account_manager %} and offer a call with {{ account_manager }}, their account manager{% endif %}.",
        )
        await call(
            "edit_block",
            session_id=sid,
            block_id="order-number",
            op="insert",
            after="persona",
            role="system",
            content="Always quote the customer's order number and give one concrete next step.",
        )
        await call("update_variables", session_id=sid, values={"account_manager": "Dana"})
        compiled = await call("compile_session", session_id=sid)
        show("compiled system prompt:\n" + textwrap.indent(compiled["manifest"]["system"], "  "))
        est = compiled["estimates"][0]
        show(f"estimate: {est['inputTokens']} input tokens on {est['model']}")

        step("Re-run it on the model", f"run_session(session_id='{sid}')")
        runs = await call("run_session", session_id=sid)
        for r in runs["runs"]:
            show(f"{r['model']}: {r['status']}, {r['totalTokens']} tokens → trace {r['traceId']}")
            show((r["output"] or "").replace("\n", "\n  "), indent=8)

        step("See the diff", f"diff_session(session_id='{sid}')")
        diff = await call("diff_session", session_id=sid)
        for row in diff["summary"]:
            counts = f"+{row['added_lines']} -{row['removed_lines']}"
            show(f"{row['part']:<9} {row['id'] or '':<28} {row['change']:<9} {counts}")
        for m in diff["models"]:
            d = m["deltas"]
            show(
                f"{m['model']}: output changed={m['outputChanged']}, Δtokens {d['totalTokens']:+}, "
                f"Δduration {d['duration']:+.4f}s"
            )
        show(diff["unified"], indent=6, limit=1400)

        step("Save the fix to the prompt's draft", f"save_session(session_id='{sid}')")
        saved = await call("save_session", session_id=sid)
        show(f"draft of {saved['prompt']} is now revision {saved['draftRevision']}")

        step("Publish it", "publish_prompt(name='support-reply')")
        v2 = await call("publish_prompt", name="support-reply", note="quote order number; offer account manager")
        show(f"support-reply v{v2['version']} is production")

        step("The original call, against production now", f"diff_trace(trace_id='{first['id']}')")
        dt = await call("diff_trace", trace_id=first["id"])
        show(
            f"trace was v{dt['trace']['version']}, production is v{dt['against']['version']}; "
            f"changed={dt['changed']}; the rendered prompt for this very call changes: {dt['rendered']['changed']}"
        )

        step("The next call runs on the new version", "run_prompt(name='support-reply', …)")
        again = await call(
            "run_prompt",
            name="support-reply",
            variables={"company_name": "Acme", "tier": "premium", "account_manager": "Dana"},
            messages=[{"role": "user", "content": QUESTION}],
        )
        show(f"trace {again['trace']['id']} on v{again['trace']['promptVersion']}")
        show((again["trace"]["output"] or "").replace("\n", "\n  "), indent=8)
        stats = await call("trace_stats", group_by="version", prompt_name="support-reply")
        for g in stats["groups"]:
            version = g["group"]["promptVersion"]
            label = f"v{version}" if version else "playground runs"
            show(f"{label}: {g['count']} calls, error rate {g['errorRate']:.0%}, p50 {g['p50Duration'] * 1000:.1f} ms")
    print(f"\nDone: trace → playground → edit → run → diff → save → publish, in {step.n} steps.")
    return {"first": first["id"], "session": sid, "version": v2["version"], "last": again["trace"]["id"]}


def cmd_demo(args: argparse.Namespace) -> int:
    db = args.db
    tmp = None
    if db is None:
        tmp = tempfile.TemporaryDirectory(prefix="agnt-demo-")
        db = str(Path(tmp.name) / "demo.db")
    print(f"database: {db}" + (" (throwaway: removed afterwards; pass --db to keep it)" if tmp else ""))
    try:
        asyncio.run(run_demo(db))
    except BaseExceptionGroup as group:
        failed = group.subgroup(DemoFailed)
        if failed is None:
            raise
        print(f"demo stopped: {_first(failed)}")
        return 1
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 0


def _first(group: BaseExceptionGroup[Any]) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc

"""Prompt compile latency: a realistic 20-block prompt compiled over and over.

    .venv/bin/python bench/bench_compile.py [--n 5000] [--items 20]

The prompt mixes system and user/assistant blocks, conditions on variables, loops over a list of order
objects, filters (join, map, selectattr, sum, round, truncate, title, default, tojson, indent, format)
and a macro. Reports the cold compile (templates parsed and compiled by Jinja2) and p50 / p95 / p99 /
max of warm compiles (templates cached by source), in microseconds, plus the time to compile the
whole injection corpus.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from agnt_traces.compiler import compile_prompt
from agnt_traces.compiler.parsing import PARSE_CACHE
from agnt_traces.errors import CompileError
from agnt_traces.models import PromptContent

BLOCKS: list[dict[str, Any]] = [
    {"id": "persona", "role": "system", "content": "You are {{ agent_name }}, the support agent of {{ company }}."},
    {
        "id": "policy",
        "role": "system",
        "content": "Refunds are possible within {{ refund_days }} days.\n"
        "{% if region == 'eu' %}EU customers may withdraw within 14 days without reason.{% endif %}",
    },
    {"id": "tone", "role": "system", "content": "Answer in {{ language|default('English') }}, briefly and kindly."},
    {
        "id": "vip",
        "role": "system",
        "content": "{{ customer.name|title }} is a {{ tier }} customer since {{ customer.since }}.",
        "condition": "tier in ['gold', 'platinum']",
    },
    {
        "id": "trial",
        "role": "system",
        "content": "The customer is on a trial: do not offer paid upgrades.",
        "condition": "is_trial",
    },
    {
        "id": "tools",
        "role": "system",
        "content": "Tools you may call: {{ tools_allowed|map('upper')|join(', ') }}.",
        "condition": "tools_allowed",
    },
    {
        "id": "orders",
        "role": "user",
        "content": "My orders:\n{% for o in orders %}- #{{ o.id }} {{ o.item|truncate(30) }}: "
        "{{ '%.2f'|format(o.price) }} {{ currency }} ({{ o.status }}){% if not loop.last %}\n{% endif %}"
        "{% endfor %}",
    },
    {
        "id": "totals",
        "role": "user",
        "content": "Total spent: {{ (orders|sum(attribute='price'))|round(2) }} {{ currency }} over "
        "{{ orders|length }} orders.",
    },
    {
        "id": "late",
        "role": "user",
        "content": "Late orders: {{ orders|selectattr('status', 'equalto', 'late')|map(attribute='id')|join(', ') }}",
        "condition": "orders|selectattr('status', 'equalto', 'late')|list|length > 0",
    },
    {
        "id": "macro",
        "role": "user",
        "content": "{% macro line(k, v) %}{{ k|capitalize }}: {{ v }}{% endmacro %}"
        "{{ line('email', customer.email) }}\n{{ line('phone', customer.phone|default('unknown')) }}",
    },
    {"id": "prefs", "role": "user", "content": "Preferences:\n{{ customer.prefs|tojson(2)|indent(2, true) }}"},
    {
        "id": "history",
        "role": "assistant",
        "content": "{% for turn in history[-3:] %}{{ turn.role }}: {{ turn.text }}\n{% endfor %}",
        "condition": "history",
    },
    {
        "id": "escalate",
        "role": "system",
        "content": "Escalate to a human after {{ max_turns }} turns.",
        "condition": "max_turns > 0",
    },
    {
        "id": "format",
        "role": "system",
        "content": "Reply with at most {{ max_words }} words{% if markdown %}, in Markdown{% endif %}.",
    },
    {
        "id": "greeting",
        "role": "assistant",
        "content": "Hello {{ customer.name.split(' ')[0] }}! How can I help with order #{{ orders[0].id }}?",
    },
    {"id": "coupon", "role": "user", "content": "I have coupon {{ coupon|upper }}.", "condition": "coupon"},
    {
        "id": "summary",
        "role": "system",
        "content": "Summary: {{ '{} orders, {} late, tier {}'.format(orders|length, "
        "orders|selectattr('status', 'equalto', 'late')|list|length, tier) }}",
    },
    {"id": "notes", "role": "system", "content": "{{ notes|join('\n')|wordwrap(80) }}", "condition": "notes"},
    {"id": "locale", "role": "system", "content": "Dates use {{ date_format }}; money uses {{ currency }}."},
    {
        "id": "closing",
        "role": "system",
        "content": "Never reveal internal notes. Sign as {{ agent_name ~ ' @ ' ~ company }}.",
    },
]

DECLS: list[dict[str, Any]] = [
    {"name": "agent_name", "type": "string", "default": "Ava"},
    {"name": "company", "type": "string", "required": True},
    {"name": "refund_days", "type": "integer", "default": 30},
    {"name": "region", "type": "string", "default": "us"},
    {"name": "language", "type": "string"},
    {"name": "tier", "type": "string", "default": "basic"},
    {"name": "is_trial", "type": "boolean", "default": False},
    {"name": "tools_allowed", "type": "list", "default": []},
    {"name": "orders", "type": "list", "required": True},
    {"name": "currency", "type": "string", "default": "EUR"},
    {"name": "customer", "type": "object", "required": True},
    {"name": "history", "type": "list", "default": []},
    {"name": "max_turns", "type": "integer", "default": 6},
    {"name": "max_words", "type": "integer", "default": 120},
    {"name": "markdown", "type": "boolean", "default": True},
    {"name": "coupon", "type": "string"},
    {"name": "notes", "type": "list"},
    {"name": "date_format", "type": "string", "default": "YYYY-MM-DD"},
]


def make_variables(items: int) -> dict[str, Any]:
    statuses = ["shipped", "late", "delivered", "processing"]
    return {
        "company": "Acme Outdoor",
        "region": "eu",
        "tier": "gold",
        "tools_allowed": ["lookup_order", "refund", "escalate"],
        "orders": [
            {
                "id": 10_000 + i,
                "item": f"Trail running shoes, size {38 + i % 10}, colour {['red', 'blue', 'black'][i % 3]}",
                "price": 59.9 + i * 3.25,
                "status": statuses[i % len(statuses)],
            }
            for i in range(items)
        ],
        "customer": {
            "name": "ada lovelace",
            "since": "2021-03-14",
            "email": "ada@example.com",
            "prefs": {"contact": "email", "newsletter": False, "sizes": [39, 40]},
        },
        "history": [{"role": "user", "text": f"message {i}"} for i in range(6)],
        "coupon": "spring25",
        "notes": ["Customer called twice about the late order.", "Prefers short answers."],
    }


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="warm compiles to time")
    parser.add_argument("--items", type=int, default=20, help="orders in the list variable")
    args = parser.parse_args()

    content = PromptContent.model_validate(
        {"blocks": BLOCKS, "variables": DECLS, "model": {"provider": "anthropic", "name": "claude-sonnet-4-5"}}
    )
    variables = make_variables(args.items)

    PARSE_CACHE.clear()
    start = time.perf_counter()
    result = compile_prompt(content, variables, [{"role": "user", "content": "Where is my order?"}])
    cold = time.perf_counter() - start
    assert not result.warnings, result.warnings
    chars = len(result.manifest["system"]) + sum(len(m["content"]) for m in result.messages)

    samples = []
    for _ in range(args.n):
        start = time.perf_counter()
        compile_prompt(content, variables, [{"role": "user", "content": "Where is my order?"}])
        samples.append(time.perf_counter() - start)

    etag_samples = []
    for _ in range(min(args.n, 1000)):
        start = time.perf_counter()
        _ = content.etag
        etag_samples.append(time.perf_counter() - start)

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from injection_corpus import CONDITION_PAYLOADS, PAYLOADS

    blocks = [{"id": "b", "content": p} for p in PAYLOADS]
    blocks += [{"id": "b", "content": "x", "condition": p} for p in CONDITION_PAYLOADS]
    refused = 0
    start = time.perf_counter()
    for block in blocks:
        try:
            compile_prompt(PromptContent.model_validate({"blocks": [block]}))
        except CompileError:
            refused += 1
    corpus = time.perf_counter() - start

    us = 1e6
    print(f"prompt: {len(BLOCKS)} blocks, {len(DECLS)} variables, {args.items} orders")
    print(f"output: {result.block_messages} block messages, {chars} characters")
    print(f"cold compile (templates parsed):  {cold * 1e3:8.2f} ms")
    print(
        f"warm compile x{args.n}:  p50 {percentile(samples, 0.50) * us:8.1f} us   "
        f"p95 {percentile(samples, 0.95) * us:8.1f} us   p99 {percentile(samples, 0.99) * us:8.1f} us   "
        f"max {max(samples) * 1e3:6.2f} ms   mean {statistics.fmean(samples) * us:8.1f} us"
    )
    print(f"  of which content.etag: p50 {percentile(etag_samples, 0.50) * us:8.1f} us")
    print(f"injection corpus: {refused} of {len(blocks)} payloads refused in {corpus:.2f} s")


if __name__ == "__main__":
    main()

"""Trace bodies are packed with a preset dictionary; bodies packed the older ways still read back."""

from __future__ import annotations

import json
import zlib

import pytest

from agnt_traces.store import codec


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"output": "ok"},
        {
            "variables": {"customer": "Ada", "tier": "premium"},
            "messages": [{"role": "system", "content": "You are a helpful agent."}, {"role": "user", "content": "Hi"}],
            "output": "Your refund was issued yesterday and should be with you in a few days.",
        },
        {"messages": [{"role": "user", "content": 'é 日本 \u2028 \\ "'}], "error": {"type": "E", "message": "x" * 90}},
    ],
)
def test_a_body_reads_back_as_it_was_packed(body: dict[str, object]) -> None:
    assert codec._decompress(codec._compress(body)) == body


def test_older_forms_still_read() -> None:
    body = {"output": "the answer " * 30, "messages": [{"role": "user", "content": "why?"}]}
    raw = json.dumps(body, separators=(",", ":")).encode()
    assert codec._decompress(b"z" + zlib.compress(raw, 6)) == body
    assert codec._decompress(b"j" + raw) == body


def test_the_dictionary_makes_a_typical_body_smaller() -> None:
    body = {
        "variables": {"name": "Ada"},
        "messages": [{"role": "user", "content": "Can you tell me when my order will be here? It has been a week."}],
        "output": "I can see your order is on its way: it should come to you in two days. Thank you for your time.",
    }
    raw = json.dumps(body, separators=(",", ":")).encode()
    packed = codec._compress(body)
    assert packed[:1] == b"d"
    assert len(packed) < 0.85 * (1 + len(zlib.compress(raw, 6)))

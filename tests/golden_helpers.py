"""A prompt whose golden check depends on one block, run on the local model server.

The model server answers ``"echo: " + <the last user message>``: the ``signoff`` block is the last user
message and carries the phrase the golden check looks for, so dropping that block makes every case fail.
"""

from __future__ import annotations

from typing import Any

PHRASE = "Kind regards, Acme support"


def model_of(server: Any, **params: Any) -> dict[str, Any]:
    return {"provider": "openai", "name": "gpt-4o-mini", "params": {"api_base": server.openai_base, **params}}


def content_of(server: Any, *, with_signoff: bool = True, **params: Any) -> dict[str, Any]:
    blocks = [
        {"id": "persona", "role": "system", "content": "You answer for {{ company }}."},
        {"id": "ask", "role": "user", "content": "Question {{ n }}: {{ question }}"},
    ]
    if with_signoff:
        blocks.append(
            {"id": "signoff", "role": "user", "content": "Answer question {{ n }} and end with: " + PHRASE + "."}
        )
    return {
        "blocks": blocks,
        "variables": [
            {"name": "company", "type": "string", "required": True},
            {"name": "question", "type": "string", "required": True},
            {"name": "n", "type": "integer", "required": True},
        ],
        "model": model_of(server, **params),
    }


def variables(i: int) -> dict[str, Any]:
    return {"company": "Acme", "question": f"where is parcel {i}?", "n": i}

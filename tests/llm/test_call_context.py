"""A failure names the endpoint it called with every credential scrubbed, however late it is described."""

from __future__ import annotations

import pytest

from agnt_traces.llm.failures import CallContext, classify


def context(api_base: str | None) -> CallContext:
    return CallContext(
        provider="openai", model="openai/gpt-4o-mini", called_api_base=api_base, timeout=5.0, key_env="OPENAI_API_KEY"
    )


def test_the_endpoint_a_failure_names_is_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_GATEWAY_TOKEN", "plain-secret-value-123")
    ctx = context("http://127.0.0.1:9/v1/plain-secret-value-123/sk-abcdefghijklmnop")
    assert ctx.api_base == "http://127.0.0.1:9/v1/[REDACTED]/[REDACTED]"
    failure = classify(ConnectionRefusedError("refused"), ctx)
    shown = " ".join((failure.summary, failure.detail, failure.hint, failure.message(1)))
    assert "plain-secret-value-123" not in shown and "sk-abcdefghijklmnop" not in shown
    assert "127.0.0.1:9" in shown


def test_no_endpoint_is_the_default_one() -> None:
    ctx = context(None)
    assert ctx.api_base is None
    assert "its default endpoint" in classify(ConnectionRefusedError("refused"), ctx).message(1)

"""Settings read from the environment: defaults, every variable honoured, and a bad value refused at start
with a message naming the variable (never a traceback, never a silently absurd limit)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agnt_traces.config import Settings
from agnt_traces.errors import InvalidArgument

ALL = [
    "AGNT_TRACES_DB",
    "AGNT_TRACES_TENANT",
    "AGNT_TRACES_PRICES",
    "AGNT_TRACES_MODEL_TIMEOUT",
    "AGNT_TRACES_MAX_BODY_BYTES",
    "AGNT_TRACES_SESSION_IDLE_SECONDS",
    "AGNT_TRACES_MCP_SESSIONS_PER_TENANT",
    "AGNT_TRACES_MCP_SESSIONS_PER_TOKEN",
    "AGNT_TRACES_MCP_SESSION_IDLE_SECONDS",
    "AGNT_TRACES_MCP_RESPONSES",
    "AGNT_TRACES_STDIO_MAX_LINE_BYTES",
    "AGNT_TRACES_SESSION_BUDGET_USD",
    "AGNT_TRACES_SESSION_BUDGET_TOKENS",
    "AGNT_TRACES_OTLP_MAX_BODY_BYTES",
    "AGNT_TRACES_OTLP_MAX_SPANS",
    "AGNT_TRACES_OTLP_MAX_ATTRIBUTE_CHARS",
    "AGNT_TRACES_COMPILE_SECONDS",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ALL:
        monkeypatch.delenv(name, raising=False)


def test_defaults_when_nothing_is_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AGNT_TRACES_DB", str(tmp_path / "x.db"))
    s = Settings.from_env()
    assert s.db_path == str(tmp_path / "x.db")
    assert s.tenant == "default"
    assert s.model_timeout == 60.0
    assert s.max_body_bytes == 1_000_000
    assert (s.mcp_sessions_per_tenant, s.mcp_sessions_per_token, s.mcp_session_idle_seconds) == (32, 16, 600.0)
    assert s.mcp_responses == "auto"
    assert s.stdio_line_limit == s.max_body_bytes  # 0 means: the HTTP body limit
    assert (s.otlp_max_body_bytes, s.otlp_max_spans, s.otlp_max_attribute_chars) == (8_000_000, 5_000, 256_000)
    assert s.price_overrides == {}
    assert s.model_policy is not None


def test_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGNT_TRACES_DB", "/env.db")
    monkeypatch.setenv("AGNT_TRACES_TENANT", "env-tenant")
    s = Settings.from_env(db="/arg.db", tenant="arg-tenant")
    assert (s.db_path, s.tenant) == ("/arg.db", "arg-tenant")


def test_every_variable_is_honoured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"openai/x": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}}))
    env = {
        "AGNT_TRACES_TENANT": "acme.prod",
        "AGNT_TRACES_PRICES": str(prices),
        "AGNT_TRACES_MODEL_TIMEOUT": "12.5",
        "AGNT_TRACES_MAX_BODY_BYTES": "2048",
        "AGNT_TRACES_SESSION_IDLE_SECONDS": "90",
        "AGNT_TRACES_MCP_SESSIONS_PER_TENANT": "3",
        "AGNT_TRACES_MCP_SESSIONS_PER_TOKEN": "2",
        "AGNT_TRACES_MCP_SESSION_IDLE_SECONDS": "30",
        "AGNT_TRACES_MCP_RESPONSES": " JSON ",
        "AGNT_TRACES_STDIO_MAX_LINE_BYTES": "4096",
        "AGNT_TRACES_SESSION_BUDGET_USD": "0.5",
        "AGNT_TRACES_SESSION_BUDGET_TOKENS": "1000",
        "AGNT_TRACES_OTLP_MAX_BODY_BYTES": "100000",
        "AGNT_TRACES_OTLP_MAX_SPANS": "10",
        "AGNT_TRACES_OTLP_MAX_ATTRIBUTE_CHARS": "500",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    s = Settings.from_env(db=str(tmp_path / "x.db"))
    assert s.tenant == "acme.prod"
    assert s.price_overrides["openai/x"]["output_cost_per_token"] == 2e-6
    assert s.model_timeout == 12.5 and s.policy().max_timeout == 12.5
    assert s.max_body_bytes == 2048
    assert s.session_idle_seconds == 90
    assert (s.mcp_sessions_per_tenant, s.mcp_sessions_per_token, s.mcp_session_idle_seconds) == (3, 2, 30)
    assert s.mcp_responses == "json"
    assert s.stdio_line_limit == 4096
    assert (s.session_budget_usd, s.session_budget_tokens) == (0.5, 1000)
    assert (s.otlp_max_body_bytes, s.otlp_max_spans, s.otlp_max_attribute_chars) == (100_000, 10, 500)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("AGNT_TRACES_TENANT", "no spaces allowed"),
        ("AGNT_TRACES_MODEL_TIMEOUT", "soon"),
        ("AGNT_TRACES_MODEL_TIMEOUT", "nan"),
        ("AGNT_TRACES_MODEL_TIMEOUT", "-5"),
        ("AGNT_TRACES_MODEL_TIMEOUT", "inf"),
        ("AGNT_TRACES_MAX_BODY_BYTES", "nan"),
        ("AGNT_TRACES_MAX_BODY_BYTES", "1e400"),
        ("AGNT_TRACES_MAX_BODY_BYTES", "-1"),
        ("AGNT_TRACES_MAX_BODY_BYTES", "0"),
        ("AGNT_TRACES_SESSION_IDLE_SECONDS", "nan"),
        ("AGNT_TRACES_SESSION_IDLE_SECONDS", "0"),
        ("AGNT_TRACES_MCP_SESSIONS_PER_TENANT", "0"),
        ("AGNT_TRACES_MCP_SESSIONS_PER_TENANT", "2.5"),
        ("AGNT_TRACES_MCP_SESSION_IDLE_SECONDS", "inf"),
        ("AGNT_TRACES_MCP_RESPONSES", "sse"),
        ("AGNT_TRACES_MCP_RESPONSES", "true"),
        ("AGNT_TRACES_STDIO_MAX_LINE_BYTES", "-1"),
        ("AGNT_TRACES_SESSION_BUDGET_USD", "0"),
        ("AGNT_TRACES_OTLP_MAX_SPANS", "many"),
        ("AGNT_TRACES_COMPILE_SECONDS", "0.0001"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(InvalidArgument) as caught:
        Settings.from_env(db="/tmp/unused.db")
    if name == "AGNT_TRACES_TENANT":
        assert "tenant" in caught.value.message
    else:
        assert name in caught.value.message, caught.value.message


def test_an_unreadable_prices_file_is_refused_saying_what_it_should_hold(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bad = tmp_path / "prices.json"
    bad.write_text("{not json")
    monkeypatch.setenv("AGNT_TRACES_PRICES", str(bad))
    with pytest.raises(InvalidArgument, match=r"AGNT_TRACES_PRICES=.*input_cost_per_token"):
        Settings.from_env(db="/tmp/unused.db")

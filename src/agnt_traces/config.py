"""Settings, from arguments and the environment (``AGNT_TRACES_*``)."""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InvalidArgument
from .llm.policy import ModelPolicy

TENANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

if TYPE_CHECKING:
    from .otlp.decode import OtlpLimits

__all__ = [
    "COMPILE_LIMITS",
    "MCP_RESPONSES",
    "Settings",
    "check_compile_limits",
    "check_tenant",
    "compile_limit",
    "default_db_path",
    "env_number",
]


def default_db_path() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("agnt-traces", appauthor=False)) / "traces.db"


def check_tenant(tenant: str) -> str:
    if not TENANT_RE.match(tenant):
        raise InvalidArgument(
            f"tenant {tenant!r} is invalid: use 1-64 characters of A-Z, a-z, 0-9, '.', '_' or '-'",
            {"field": "tenant"},
        )
    return tenant


def _float_env(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return float(raw)
    except ValueError:
        raise InvalidArgument(f"{name}={raw!r} is not a number") from None


def _positive_float_env(name: str, default: float) -> float:
    value = _float_env(name, default)
    if not 0 < value < float("inf"):
        raise InvalidArgument(f"{name}={os.environ.get(name)!r} must be a positive, finite number")
    return value


def _positive_int_env(name: str, default: int, minimum: int = 1) -> int:
    value = _float_env(name, default)
    if not minimum <= value < float("inf") or value != int(value):
        raise InvalidArgument(f"{name}={os.environ.get(name)!r} must be a whole number of at least {minimum}")
    return int(value)


MCP_RESPONSES = ("auto", "stream", "json")  # the first is the default


def _choice_env(name: str, choices: tuple[str, ...]) -> str:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return choices[0]
    value = raw.strip().lower()
    if value not in choices:
        raise InvalidArgument(f"{name}={raw!r} must be one of: {', '.join(choices)} (default {choices[0]})")
    return value


def env_number(name: str, default: float, minimum: float) -> float:
    """``float(os.environ[name])`` when set, else ``default``.

    Raises:
        InvalidArgument: the value is not a finite number of at least ``minimum``.
    """
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidArgument(f"{name}={raw!r} is not a number") from None
    if not math.isfinite(value) or value < minimum:
        raise InvalidArgument(f"{name}={raw!r} must be a number of at least {minimum:g}")
    return value


#: The prompt compiler's limits: environment variable -> (default, smallest allowed). Read by
#: ``compiler`` and ``compile_pool``; checked by ``Settings.from_env`` so a bad value stops the server at
#: start rather than failing the first compile.
COMPILE_LIMITS: dict[str, tuple[float, float]] = {
    "AGNT_TRACES_COMPILE_SECONDS": (2.0, 0.05),
    "AGNT_TRACES_MAX_TEMPLATE_BYTES": (100_000, 1),
    "AGNT_TRACES_MAX_PROMPT_TEMPLATE_BYTES": (500_000, 1),
    "AGNT_TRACES_TEMPLATE_CACHE_BYTES": (32_000_000, 0),
    "AGNT_TRACES_COMPILE_WORKERS": (2, 0),
    "AGNT_TRACES_COMPILE_WORKER_MAX_RSS": (300_000_000, 50_000_000),
}


def compile_limit(name: str) -> float:
    default, minimum = COMPILE_LIMITS[name]
    return env_number(name, default, minimum)


def check_compile_limits() -> None:
    """Raises :class:`InvalidArgument` naming the first compiler limit set to something unusable."""
    for name in COMPILE_LIMITS:
        compile_limit(name)


@dataclass(slots=True)
class Settings:
    db_path: str = ""
    tenant: str = "default"
    session_idle_seconds: float = 7 * 24 * 3600.0
    model_timeout: float = 60.0
    model_max_attempts: int = 3
    max_concurrent_runs: int = 4
    # Spend limit of one playground session (all its runs): a run that would cross it is refused first.
    session_budget_usd: float = 5.0
    session_budget_tokens: int = 2_000_000
    max_body_bytes: int = 1_000_000
    price_overrides: dict[str, dict[str, float]] = field(default_factory=dict)
    # MCP over HTTP: open sessions per tenant and per token, and how long an unused one lives.
    mcp_sessions_per_tenant: int = 32
    mcp_sessions_per_token: int = 16
    mcp_session_idle_seconds: float = 600.0
    # How MCP over HTTP answers a request: "auto" (an SSE stream for a request that asked for progress
    # notifications, one JSON body for any other), "stream" (always a stream) or "json" (always one JSON body:
    # no progress notifications). A JSON body costs the server about half the CPU of a stream.
    mcp_responses: str = "auto"
    # MCP over stdio: the longest request line (default: the HTTP body limit).
    stdio_max_line_bytes: int = 0
    # Where model calls may go and what their params may do (AGNT_TRACES_MODEL_ENDPOINTS,
    # AGNT_TRACES_MODEL_HEADERS, AGNT_TRACES_MAX_OUTPUT_CHARS; the timeout limit is model_timeout).
    # None: read from the environment when needed (Settings.from_env reads it once, at start).
    model_policy: ModelPolicy | None = None
    # OTLP/HTTP ingest (POST /v1/traces): body bytes (on the wire and decompressed), spans per request,
    # characters per attribute value (longer ones are cut and the trace is marked not replayable).
    otlp_max_body_bytes: int = 8_000_000
    otlp_max_spans: int = 5_000
    otlp_max_attribute_chars: int = 256_000

    def policy(self) -> ModelPolicy:
        """The model policy in force.

        Raises:
            InvalidArgument: a malformed AGNT_TRACES_MODEL_* setting.
        """
        if self.model_policy is not None:
            return self.model_policy
        return ModelPolicy.from_env(max_timeout=self.model_timeout)

    @classmethod
    def from_env(cls, *, db: str | None = None, tenant: str | None = None) -> Settings:
        prices: dict[str, Any] = {}
        prices_file = os.environ.get("AGNT_TRACES_PRICES")
        if prices_file:
            try:
                prices = json.loads(Path(prices_file).read_text())
            except (OSError, ValueError) as exc:
                raise InvalidArgument(
                    f"AGNT_TRACES_PRICES={prices_file!r} could not be read as JSON ({exc}); it should map "
                    '"provider/model" to {"input_cost_per_token": …, "output_cost_per_token": …}'
                ) from None
        check_compile_limits()
        model_timeout = _positive_float_env("AGNT_TRACES_MODEL_TIMEOUT", 60.0)
        return cls(
            db_path=db or os.environ.get("AGNT_TRACES_DB") or str(default_db_path()),
            tenant=check_tenant(tenant or os.environ.get("AGNT_TRACES_TENANT") or "default"),
            session_idle_seconds=_positive_float_env("AGNT_TRACES_SESSION_IDLE_SECONDS", 7 * 24 * 3600.0),
            model_timeout=model_timeout,
            max_body_bytes=_positive_int_env("AGNT_TRACES_MAX_BODY_BYTES", 1_000_000),
            price_overrides=prices,
            mcp_sessions_per_tenant=_positive_int_env("AGNT_TRACES_MCP_SESSIONS_PER_TENANT", 32),
            mcp_sessions_per_token=_positive_int_env("AGNT_TRACES_MCP_SESSIONS_PER_TOKEN", 16),
            mcp_session_idle_seconds=_positive_float_env("AGNT_TRACES_MCP_SESSION_IDLE_SECONDS", 600.0),
            mcp_responses=_choice_env("AGNT_TRACES_MCP_RESPONSES", MCP_RESPONSES),
            stdio_max_line_bytes=_positive_int_env("AGNT_TRACES_STDIO_MAX_LINE_BYTES", 0, minimum=0),
            session_budget_usd=_positive_float_env("AGNT_TRACES_SESSION_BUDGET_USD", 5.0),
            session_budget_tokens=_positive_int_env("AGNT_TRACES_SESSION_BUDGET_TOKENS", 2_000_000),
            model_policy=ModelPolicy.from_env(max_timeout=model_timeout),
            otlp_max_body_bytes=_positive_int_env("AGNT_TRACES_OTLP_MAX_BODY_BYTES", 8_000_000),
            otlp_max_spans=_positive_int_env("AGNT_TRACES_OTLP_MAX_SPANS", 5_000),
            otlp_max_attribute_chars=_positive_int_env("AGNT_TRACES_OTLP_MAX_ATTRIBUTE_CHARS", 256_000),
        )

    def otlp_limits(self) -> OtlpLimits:
        from .otlp.decode import OtlpLimits

        return OtlpLimits(
            max_body_bytes=self.otlp_max_body_bytes,
            max_spans=self.otlp_max_spans,
            max_attr_chars=self.otlp_max_attribute_chars,
        )

    @property
    def stdio_line_limit(self) -> int:
        """The longest stdio request line, in bytes: ``stdio_max_line_bytes``, else the HTTP body limit."""
        return self.stdio_max_line_bytes or self.max_body_bytes

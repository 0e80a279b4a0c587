"""Settings, from arguments and the environment (``AGNT_TRACES_*``)."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InvalidArgument
from .models import TENANT_RE

__all__ = [
    "COMPILE_LIMITS",
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
    max_body_bytes: int = 1_000_000
    price_overrides: dict[str, dict[str, float]] = field(default_factory=dict)

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
        return cls(
            db_path=db or os.environ.get("AGNT_TRACES_DB") or str(default_db_path()),
            tenant=check_tenant(tenant or os.environ.get("AGNT_TRACES_TENANT") or "default"),
            session_idle_seconds=_float_env("AGNT_TRACES_SESSION_IDLE_SECONDS", 7 * 24 * 3600.0),
            model_timeout=_float_env("AGNT_TRACES_MODEL_TIMEOUT", 60.0),
            max_body_bytes=int(_float_env("AGNT_TRACES_MAX_BODY_BYTES", 1_000_000)),
            price_overrides=prices,
        )

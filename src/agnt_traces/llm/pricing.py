"""Prices: the user's overrides first, then LiteLLM's bundled price map; unknown means None."""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import threading
from pathlib import Path
from typing import Any

from agnt_traces.llm._runtime import load_litellm
from agnt_traces.models import ModelConfig

__all__ = [
    "LOCAL_PROVIDER",
    "bundled_price_map",
    "check_overrides",
    "estimate_cost",
    "override_for",
    "price_from_map",
    "price_from_override",
]

log = logging.getLogger("agnt_traces.llm")

LOCAL_PROVIDER = "agnt-local"
#: LiteLLM's bundled price map, shipped inside the installed ``litellm`` package.
BUNDLED_PRICE_FILE = "model_prices_and_context_window_backup.json"
_RESERVED_KEYS = frozenset({"sample_spec", "fallback_generalizations"})

_PER_TOKEN = ("input_cost_per_token", "output_cost_per_token")
_PER_MILLION = ("input_cost_per_million_tokens", "output_cost_per_million_tokens")


_KNOWN_KEYS = frozenset(_PER_TOKEN + _PER_MILLION)


def check_overrides(overrides: dict[str, dict[str, float]]) -> None:
    """Raise ValueError naming the first bad price override (unknown key, negative or non-finite)."""
    for model, prices in overrides.items():
        if not isinstance(prices, dict):
            raise ValueError(f"price override for {model!r} must be an object of per-token prices")
        unknown = sorted(set(prices) - _KNOWN_KEYS)
        if unknown:
            raise ValueError(
                f"price override for {model!r} has unknown keys {unknown}; use {', '.join(sorted(_KNOWN_KEYS))}"
            )
        for key, value in prices.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"price override {model!r}.{key} must be a finite number >= 0")


def override_for(model: ModelConfig, overrides: dict[str, dict[str, float]] | None) -> dict[str, float] | None:
    """The user's price for this model: keyed ``provider/name`` (preferred) or bare ``name``."""
    if not overrides:
        return None
    return overrides.get(model.litellm_model) or overrides.get(model.name)


def _rate(override: dict[str, float], per_token: str, per_million: str) -> float:
    if per_token in override:
        value = float(override[per_token])
    elif per_million in override:
        value = float(override[per_million]) / 1_000_000
    else:
        value = 0.0
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"price override {per_token} must be a finite number >= 0")
    return value


def price_from_override(override: dict[str, float], input_tokens: int, output_tokens: int) -> float:
    """Cost in USD from ``{"input_cost_per_token", "output_cost_per_token"}`` (or ``*_per_million_tokens``)."""
    return input_tokens * _rate(override, _PER_TOKEN[0], _PER_MILLION[0]) + output_tokens * _rate(
        override, _PER_TOKEN[1], _PER_MILLION[1]
    )


def price_from_map(model: ModelConfig, input_tokens: int, output_tokens: int) -> float | None:
    """Cost from LiteLLM's bundled price map, or None when the model is not in it."""
    if model.provider == LOCAL_PROVIDER:
        return 0.0
    litellm: Any = load_litellm()
    try:
        prompt_cost, completion_cost = litellm.cost_per_token(
            model=model.litellm_model, prompt_tokens=input_tokens, completion_tokens=output_tokens
        )
    except Exception:  # ModelNotMappedError and friends: the price is unknown
        return None
    total = float(prompt_cost) + float(completion_cost)
    return total if math.isfinite(total) else None


_map_lock = threading.Lock()
_bundled: dict[str, dict[str, Any]] | None = None


def _read_bundled_map() -> dict[str, dict[str, Any]]:
    """LiteLLM's bundled price map, read as a file: ``import litellm`` costs 3-4 s, this about 0.1 s."""
    spec = importlib.util.find_spec("litellm")  # finds the package without importing it
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / BUNDLED_PRICE_FILE
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                log.warning("LiteLLM's bundled price map could not be read; ingested costs stay unknown")
                return {}
            if isinstance(data, dict):
                return {k: v for k, v in data.items() if isinstance(v, dict) and k not in _RESERVED_KEYS}
    log.warning("LiteLLM's bundled price map was not found; ingested costs stay unknown")
    return {}


def bundled_price_map() -> dict[str, dict[str, Any]]:
    """The bundled price map, read once per process (thread safe)."""
    global _bundled
    if _bundled is None:
        with _map_lock:
            if _bundled is None:
                _bundled = _read_bundled_map()
    return _bundled


def _map_entry(provider: str, name: str) -> dict[str, Any] | None:
    """The map's entry for ``provider/name``, else for the bare ``name`` if it is that provider's model."""
    prices = bundled_price_map()
    entry = prices.get(f"{provider}/{name}") if provider else None
    if entry is None:
        entry = prices.get(name)
        owner = str(entry.get("litellm_provider") or "") if entry is not None else ""
        if entry is not None and provider and owner and not owner.startswith(provider):
            return None  # e.g. "gpt-4o" asked for under another provider: not this price
    target = entry.get("alias_of") if entry is not None else None
    if isinstance(target, str):
        entry = prices.get(target)
    return entry


def _per_token(entry: dict[str, Any], key: str) -> float | None:
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        return None
    return float(value)


def estimate_cost(
    provider: str,
    name: str,
    input_tokens: int,
    output_tokens: int,
    overrides: dict[str, dict[str, float]] | None = None,
) -> float | None:
    """A cost for a call whose client did not report one: the user's price override first, then the
    per-token prices of LiteLLM's bundled map (read from its JSON file, never by importing litellm).
    None when the model is priced nowhere."""
    if not name:
        return None
    if provider == LOCAL_PROVIDER:
        return 0.0
    override = override_for(ModelConfig(provider=provider or "-", name=name), overrides)
    if override is not None:
        try:
            return price_from_override(override, input_tokens, output_tokens)
        except ValueError:
            return None
    entry = _map_entry(provider, name)
    if entry is None:
        return None
    rate_in, rate_out = _per_token(entry, _PER_TOKEN[0]), _per_token(entry, _PER_TOKEN[1])
    if rate_in is None and rate_out is None:
        return None
    total = input_tokens * (rate_in or 0.0) + output_tokens * (rate_out or 0.0)
    return total if math.isfinite(total) else None

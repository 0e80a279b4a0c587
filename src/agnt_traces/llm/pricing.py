"""Prices: the user's overrides first, then LiteLLM's bundled price map; unknown means None."""

from __future__ import annotations

import math
from typing import Any

from agnt_traces.llm._runtime import load_litellm
from agnt_traces.models import ModelConfig

__all__ = ["LOCAL_PROVIDER", "check_overrides", "override_for", "price_from_map", "price_from_override"]

LOCAL_PROVIDER = "agnt-local"

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

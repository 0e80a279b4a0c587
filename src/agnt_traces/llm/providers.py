"""The model providers a prompt may name: LiteLLM's, read from the data file it ships (no import of
LiteLLM itself, which takes seconds), plus the built-in local model."""

from __future__ import annotations

import difflib
import functools
import importlib.util
import json
from pathlib import Path

from ..errors import InvalidArgument

__all__ = ["check_provider", "known_providers"]

LOCAL_PROVIDER = "agnt-local"
_DATA_FILE = "provider_endpoints_support_backup.json"


@functools.cache
def known_providers() -> frozenset[str]:
    """Every provider name LiteLLM 1.110.2 routes (``openai``, ``anthropic``, ``ollama``…) and ``agnt-local``."""
    names = {LOCAL_PROVIDER}
    spec = importlib.util.find_spec("litellm")
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location) / _DATA_FILE
        if path.is_file():
            data = json.loads(path.read_text(encoding="utf-8"))
            names.update(p for p in data.get("providers", {}) if isinstance(p, str))
            break
    return frozenset(names)


def check_provider(provider: str, field: str) -> None:
    """Raises:
    InvalidArgument: when ``provider`` is not one LiteLLM knows, naming close matches."""
    known = known_providers()
    if len(known) == 1 or provider in known:  # without LiteLLM's data file there is nothing to check against
        return
    close = difflib.get_close_matches(provider, sorted(known), n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(map(repr, close))}? " if close else ""
    raise InvalidArgument(
        f"{field} {provider!r} is not a model provider: {hint}use a LiteLLM provider name such as 'openai', "
        f"'anthropic', 'gemini', 'ollama', or 'agnt-local' (the built-in offline model agnt-local/echo)",
        {"field": field, "provider": provider},
    )

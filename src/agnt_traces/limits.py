"""Bounds on what a call returns, shared by every front end (light: imported at server start)."""

from __future__ import annotations

from .errors import InvalidArgument

__all__ = ["DIFF_MAX_CHARS", "MAX_DIFF_CHARS_LIMIT", "check_max_chars"]

#: Default bound on a diff's ``unified`` text, in characters: every byte lands in an agent's context.
DIFF_MAX_CHARS = 20_000
MAX_DIFF_CHARS_LIMIT = 10_000_000


def check_max_chars(max_chars: int | None) -> None:
    """Raises:
    InvalidArgument: when ``max_chars`` is not a whole number from 1 to 10,000,000."""
    if max_chars is None:
        return
    if isinstance(max_chars, bool) or not isinstance(max_chars, int) or not 1 <= max_chars <= MAX_DIFF_CHARS_LIMIT:
        raise InvalidArgument(
            f"max_chars must be a whole number from 1 to {MAX_DIFF_CHARS_LIMIT:,} (characters of the unified diff "
            f"to return; default {DIFF_MAX_CHARS:,}); got {max_chars!r}",
            {"field": "max_chars"},
        )

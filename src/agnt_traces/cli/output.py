"""Output for people (aligned tables, summaries) and for scripts (JSON)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["Column", "money", "print_json", "short_time", "table"]

Column = tuple[str, Callable[[dict[str, Any]], str]]


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def short_time(rfc3339: str | None) -> str:
    return "-" if not rfc3339 else rfc3339[:19].replace("T", " ")


def money(cost: float | None) -> str:
    return "-" if cost is None else f"{cost:.6f}"


def table(rows: Sequence[dict[str, Any]], cols: Sequence[Column], empty: str) -> str:
    """Rows as left-aligned columns under a header line; ``empty`` when there are none."""
    if not rows:
        return empty
    cells = [[_one_line(fn(r)) for _, fn in cols] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, (h, _) in enumerate(cols)]
    lines = ["  ".join(h.ljust(w) for (h, _), w in zip(cols, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def _one_line(text: str) -> str:
    return " ".join(text.split()) if any(ch in text for ch in "\n\r\t") else text

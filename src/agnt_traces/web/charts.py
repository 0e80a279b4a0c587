"""Charts as inline SVG, drawn on the server: no script, no style attribute (the page's CSP forbids
both); colours come from classes in app.css. Every chart has a title, a text description and the
numbers in a table next to it for screen readers."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from markupsafe import Markup, escape

__all__ = ["SERIES_CLASSES", "line_chart"]

W, H = 560, 200
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 12, 28
SERIES_CLASSES = ("s0", "s1", "s2", "s3", "s4", "s5")


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return value


def line_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    fmt: Callable[[float], str],
) -> Markup:
    """One polyline (with a dot per point) per series over shared x labels; gaps where a value is None."""
    values = [v for _, vs in series for v in vs if v is not None]
    top = _nice_max(max(values, default=0.0))
    n = max(len(labels), 1)
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM

    def x(i: int) -> float:
        return LEFT + (plot_w * (i + 0.5) / n)

    def y(v: float) -> float:
        return TOP + plot_h - plot_h * (v / top)

    parts = [
        f'<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for frac in (0, 0.5, 1):
        gy = y(top * frac)
        parts.append(f'<line class="grid" x1="{LEFT}" y1="{gy:.1f}" x2="{W - RIGHT}" y2="{gy:.1f}"/>')
        parts.append(
            f'<text class="axis" x="{LEFT - 6}" y="{gy + 4:.1f}" text-anchor="end">{escape(fmt(top * frac))}</text>'
        )
    step = max(1, n // 6)
    for i, label in enumerate(labels):
        if i % step == 0:
            parts.append(f'<text class="axis" x="{x(i):.1f}" y="{H - 8}" text-anchor="middle">{escape(label)}</text>')
    for k, (name, vs) in enumerate(series):
        cls = SERIES_CLASSES[k % len(SERIES_CLASSES)]
        run: list[str] = []
        for i, v in enumerate(vs):
            if v is None:
                if len(run) > 1:
                    parts.append(f'<polyline class="line {cls}" points="{" ".join(run)}"/>')
                run = []
                continue
            run.append(f"{x(i):.1f},{y(v):.1f}")
            label = labels[i] if i < len(labels) else ""
            parts.append(
                f'<circle class="dot {cls}" cx="{x(i):.1f}" cy="{y(v):.1f}" r="3">'
                f"<title>{escape(name)} · {escape(label)}: {escape(fmt(v))}</title></circle>"
            )
        if len(run) > 1:
            parts.append(f'<polyline class="line {cls}" points="{" ".join(run)}"/>')
    parts.append("</svg>")
    return Markup("".join(parts))

"""Server-rendered SVG charts: no JavaScript, no inline styles (the console's CSP forbids
them), only SVG attributes and the classes of console.css."""

from __future__ import annotations

import time
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

WIDTH = 600
HEIGHT = 170
LEFT = 52  # room for the y labels
RIGHT = 8
TOP = 10
BOTTOM = 22  # room for the time labels


@dataclass(frozen=True)
class Series:
    name: str
    values: list[float | None]  # one per bucket; None = no data
    css: str  # a class of console.css: series-1 .. series-3, series-error


def _number(value: float, unit: str) -> str:
    if unit == "%":
        return f"{value * 100:.0f}%" if value >= 0.1 or value == 0 else f"{value * 100:.1f}%"
    if value >= 10_000:
        return f"{value / 1000:.0f}k{unit}"
    if value >= 100 or value == int(value):
        return f"{value:.0f}{unit}"
    return f"{value:.1f}{unit}"


def _clock(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(epoch)) + " UTC"


def chart(
    title: str,
    series: list[Series],
    start: float,
    end: float,
    unit: str = "",
    bars: bool = False,
    ceiling: float | None = None,
) -> Markup:
    """A labelled chart of equal buckets over [start, end]: bars (stacked) or lines."""
    buckets = max((len(s.values) for s in series), default=0)
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    if bars:
        totals = [
            sum(s.values[i] or 0.0 for s in series) for i in range(buckets)
        ]  # stacked height per bucket
        top = max(totals, default=0.0)
    else:
        top = max((v for s in series for v in s.values if v is not None), default=0.0)
    top = ceiling if ceiling is not None else (top or 1.0)
    step = plot_w / buckets if buckets else plot_w

    def y(value: float) -> float:
        return TOP + plot_h - (value / top) * plot_h

    label = escape(title)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{label}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{label}</title>",
        f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" '
        f'y2="{TOP + plot_h}"/>',
        f'<line class="grid" x1="{LEFT}" y1="{TOP}" x2="{WIDTH - RIGHT}" y2="{TOP}"/>',
        f'<text class="tick" x="{LEFT - 4}" y="{TOP + 4}" text-anchor="end">'
        f"{escape(_number(top, unit))}</text>",
        f'<text class="tick" x="{LEFT - 4}" y="{TOP + plot_h}" text-anchor="end">0</text>',
        f'<text class="tick" x="{LEFT}" y="{HEIGHT - 6}">{escape(_clock(start))}</text>',
        f'<text class="tick" x="{WIDTH - RIGHT}" y="{HEIGHT - 6}" text-anchor="end">'
        f"{escape(_clock(end))}</text>",
    ]
    if bars:
        base = [0.0] * buckets
        for s in series:
            for i, value in enumerate(s.values):
                if not value:
                    continue
                x = LEFT + i * step + 1
                top_y = y(base[i] + value)
                height = y(base[i]) - top_y
                base[i] += value
                parts.append(
                    f'<rect class="{s.css}" x="{x:.1f}" y="{top_y:.1f}" '
                    f'width="{max(step - 2, 1):.1f}" height="{height:.1f}">'
                    f"<title>{escape(s.name)}: {escape(_number(value, unit))}</title></rect>"
                )
    else:
        for s in series:
            points = [
                f"{LEFT + (i + 0.5) * step:.1f},{y(v):.1f}"
                for i, v in enumerate(s.values)
                if v is not None
            ]
            if len(points) > 1:
                parts.append(f'<polyline class="line {s.css}" points="{" ".join(points)}"/>')
            for i, v in enumerate(s.values):
                if v is not None:
                    parts.append(
                        f'<circle class="{s.css}" cx="{LEFT + (i + 0.5) * step:.1f}" '
                        f'cy="{y(v):.1f}" r="2.5"><title>{escape(s.name)}: '
                        f"{escape(_number(v, unit))}</title></circle>"
                    )
    parts.append("</svg>")
    return Markup("".join(parts))

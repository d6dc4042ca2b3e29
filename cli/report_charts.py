"""Inline SVG column charts for ``jidoka report``'s page: no script, no network, no library.

Each bar is a ``<rect class="bar">`` whose height is its value's share of the tallest bar, with
``data-label`` and ``data-value`` on it and a ``<title>`` (a browser shows it on hover). A
Pareto chart adds the cumulative share as a ``<polyline class="cumulative">`` over the bars,
one ``<circle class="point" data-cumulative>`` a bar, against a 0-100% axis on the right, with
the 80% line dashed. Colours and fonts are written on the elements, so a chart copied out of
the page looks the same.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

PLOT_HEIGHT = 160.0
BAR_WIDTH = 40.0
GAP = 18.0
LEFT = 24.0
TOP = 22.0
BOTTOM = 104.0
"""Room for the labels, written at an angle under the bars."""
RIGHT = 16.0
RIGHT_WITH_AXIS = 48.0
LABEL_CHARS = 28
CHAR_WIDTH = 6.2
"""Roughly, in pixels, at the labels' 11px."""
LABEL_SLANT = 35
TEXT = "#1d232a"
MUTED = "#5b6470"
LINE = "#1f5fa8"
WASTE = "#c0392b"


@dataclass(frozen=True)
class Column:
    label: str
    value: float
    text: str
    """Written above the bar (the value with its unit)."""
    colour: str = WASTE


def column_chart(
    chart_id: str,
    title: str,
    columns: Sequence[Column],
    *,
    cumulative: Sequence[float] | None = None,
) -> str:
    """An SVG column chart; ``cumulative`` (percentages, one a column) adds a Pareto line."""
    right = RIGHT_WITH_AXIS if cumulative is not None else RIGHT
    plot_right = LEFT + len(columns) * (BAR_WIDTH + GAP)
    slant = math.cos(math.radians(LABEL_SLANT))
    labels_right = max(
        (
            LEFT
            + GAP / 2
            + i * (BAR_WIDTH + GAP)
            + BAR_WIDTH / 2
            + CHAR_WIDTH * len(_short(c.label)) * slant
            for i, c in enumerate(columns)
        ),
        default=0.0,
    )
    width = max(plot_right + right, labels_right + RIGHT, 320.0)
    height = TOP + PLOT_HEIGHT + BOTTOM
    base = TOP + PLOT_HEIGHT
    tallest = max((c.value for c in columns), default=0.0)
    parts = [
        f'<svg id="{escape(chart_id)}" class="chart" xmlns="http://www.w3.org/2000/svg" '
        f'width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'role="img" aria-label="{escape(title)}" font-family="system-ui, sans-serif" '
        f'font-size="11" fill="{TEXT}">',
        f"<title>{escape(title)}</title>",
        f'<line class="axis" x1="{LEFT}" y1="{base}" x2="{plot_right:.1f}" y2="{base}" '
        f'stroke="{MUTED}"/>',
    ]
    centres: list[float] = []
    for index, column in enumerate(columns):
        x = LEFT + GAP / 2 + index * (BAR_WIDTH + GAP)
        bar = PLOT_HEIGHT * column.value / tallest if tallest > 0 else 0.0
        centre = x + BAR_WIDTH / 2
        centres.append(centre)
        parts += [
            f'<rect class="bar" x="{x:.1f}" y="{base - bar:.1f}" width="{BAR_WIDTH:.0f}" '
            f'height="{bar:.1f}" fill="{escape(column.colour)}" '
            f'data-label="{escape(column.label)}" data-value="{column.value:g}">'
            f"<title>{escape(column.label)}: {escape(column.text)}</title></rect>",
            f'<text class="value" x="{centre:.1f}" y="{base - bar - 5:.1f}" '
            f'text-anchor="middle">{escape(column.text)}</text>',
            f'<text class="label" x="{centre:.1f}" y="{base + 14:.1f}" '
            f'transform="rotate({LABEL_SLANT} {centre:.1f} {base + 14:.1f})">'
            f"{escape(_short(column.label))}</text>",
        ]
    if cumulative is not None:
        parts += _pareto_line(centres, cumulative, plot_right + 6)
    parts.append("</svg>")
    return "\n".join(parts)


def _pareto_line(centres: Sequence[float], cumulative: Sequence[float], axis_x: float) -> list[str]:
    def y_of(pct: float) -> float:
        return TOP + PLOT_HEIGHT * (1 - pct / 100)

    points = [(x, y_of(pct)) for x, pct in zip(centres, cumulative, strict=True)]
    parts = [
        f'<line class="axis" x1="{axis_x:.1f}" y1="{TOP}" x2="{axis_x:.1f}" '
        f'y2="{TOP + PLOT_HEIGHT}" stroke="{MUTED}"/>',
        f'<line class="eighty" x1="{LEFT}" y1="{y_of(80):.1f}" x2="{axis_x:.1f}" '
        f'y2="{y_of(80):.1f}" stroke="{MUTED}" stroke-dasharray="4 3"/>',
    ]
    for pct in (0, 50, 80, 100):
        parts.append(
            f'<text class="axis-label" x="{axis_x + 4:.1f}" y="{y_of(pct) + 4:.1f}" '
            f'fill="{MUTED}">{pct}%</text>'
        )
    parts.append(
        '<polyline class="cumulative" points="'
        + " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        + f'" fill="none" stroke="{LINE}" stroke-width="2"/>'
    )
    parts += [
        f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{LINE}" '
        f'data-cumulative="{pct:g}"><title>cumulative {pct:g}%</title></circle>'
        for (x, y), pct in zip(points, cumulative, strict=True)
    ]
    return parts


def _short(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"

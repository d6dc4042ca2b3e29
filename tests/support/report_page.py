"""``jidoka report``'s page parsed back (html.parser): each chart's bars (label, value, height),
the cumulative points of a Pareto, the labels under the bars, the sections, the links, and
anything a self-contained page must not hold."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

import pytest

PLOT_HEIGHT = 160.0


@dataclass
class Bar:
    label: str
    value: float
    height: float


@dataclass
class Chart:
    bars: list[Bar] = field(default_factory=list[Bar])
    cumulative: list[float] = field(default_factory=list[float])
    labels: list[str] = field(default_factory=list[str])
    """The texts under the bars."""


class Page(HTMLParser):
    """The charts (by their svg id), sections, links, and anything a self-contained page must
    not hold (scripts, external resources)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.charts: dict[str, Chart] = {}
        self.sections: list[str] = []
        self.links: list[str] = []
        self.forbidden: list[str] = []
        self._chart: Chart | None = None
        self._label = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag in ("script", "link", "iframe", "img", "object", "embed") or "src" in found:
            self.forbidden.append(tag)
        if any(k.startswith("on") for k in found):
            self.forbidden.append(f"{tag} handler")
        if tag == "section" and "id" in found:
            self.sections.append(found["id"])
        if tag == "a":
            self.links.append(found.get("href", ""))
        if tag == "svg":
            self._chart = self.charts.setdefault(found["id"], Chart())
        elif self._chart is not None and tag == "rect" and found.get("class") == "bar":
            self._chart.bars.append(
                Bar(found["data-label"], float(found["data-value"]), float(found["height"]))
            )
        elif self._chart is not None and tag == "circle":
            self._chart.cumulative.append(float(found["data-cumulative"]))
        self._label = self._chart is not None and tag == "text" and found.get("class") == "label"

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._chart = None
        self._label = False

    def handle_data(self, data: str) -> None:
        if self._label and self._chart is not None:
            self._chart.labels.append(data)


def assert_heights_relative(chart: Chart) -> None:
    """The tallest bar is the plot's full height, every other in proportion to its value."""
    tallest = max(bar.value for bar in chart.bars)
    for bar in chart.bars:
        assert bar.height == pytest.approx(PLOT_HEIGHT * bar.value / tallest, abs=0.06), bar

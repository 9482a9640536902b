"""Geometry for the statistics page's charts, drawn as inline SVG by the templates.

Users run Airflow behind firewalls, so no chart library is fetched from a CDN; the server computes bar
positions and the template emits plain ``<rect>``/``<text>`` elements (with ``<title>`` tooltips).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    x: float
    y: float
    width: float
    height: float
    tooltip: str


# The value axis' labels are right-aligned TICK_GAP left of the plot; the plot starts far enough right for the
# longest one at CHAR_WIDTH per character (the tick font's digits and commas are narrower than that).
TICK_GAP = 6
CHAR_WIDTH = 7


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    left: float  # x of the plot's left edge (after the value labels)
    baseline: float  # y of the value axis' zero
    bars: list[Bar]
    gridlines: list[tuple[float, str]]  # (y, value label) at the top and the middle of the value axis
    label_every: int  # print every n-th label (30 days do not fit under 30 bars)

    @property
    def tick_x(self) -> float:
        """Where the value labels end (they are right-aligned)."""
        return self.left - TICK_GAP


def _nice_max(value: float) -> float:
    """The axis top: the first of 2, 4, 6, 8, 10 times 10^n at or above ``value`` (its half is a whole number)."""
    magnitude = 10 ** max(len(str(int(value))) - 1, 0)
    for step in (2, 4, 6, 8, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def column_chart(
    points: Sequence[tuple[str, float]],
    *,
    width: int = 520,
    height: int = 180,
    max_labels: int = 10,
) -> BarChart:
    """Vertical bars, one per point, scaled to a rounded maximum; room is left for labels below and left."""
    plot_top, right = 18, 8
    plot_height = height - plot_top - 24
    top = _nice_max(max((value for _, value in points), default=0))
    gridline_labels = [_tick(top), _tick(top / 2)]
    left = 4 + CHAR_WIDTH * max(len(label) for label in gridline_labels) + TICK_GAP
    slot = (width - left - right) / max(len(points), 1)
    bars = []
    for index, (label, value) in enumerate(points):
        bar_height = plot_height * value / top
        bars.append(
            Bar(
                label=label,
                value=value,
                x=round(left + index * slot + slot * 0.15, 2),
                y=round(plot_top + plot_height - bar_height, 2),
                width=round(slot * 0.7, 2),
                height=round(bar_height, 2),
                tooltip=f"{label}: {value:g}",
            )
        )
    gridlines = list(zip((plot_top, plot_top + plot_height / 2), gridline_labels, strict=True))
    return BarChart(width, height, left, plot_top + plot_height, bars, gridlines, max(1, -(-len(points) // max_labels)))


def _tick(value: float) -> str:
    """An axis value as people write counts: 2,000,000 (not 2e+06), 0.5 when it has a fraction."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,g}"

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


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    baseline: float  # y of the value axis' zero
    bars: list[Bar]
    gridlines: list[tuple[float, str]]  # (y, value label) at the top and the middle of the value axis
    label_every: int  # print every n-th label (30 days do not fit under 30 bars)


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
    plot_top, left, right = 18, 28, 8
    plot_height = height - plot_top - 24
    top = _nice_max(max((value for _, value in points), default=0))
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
    gridlines = [(plot_top, f"{top:g}"), (plot_top + plot_height / 2, f"{top / 2:g}")]
    return BarChart(width, height, plot_top + plot_height, bars, gridlines, max(1, -(-len(points) // max_labels)))

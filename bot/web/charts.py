"""Charts drawn on the server: a figure's rows as the geometry of a horizontal bar chart,
which a template writes out as SVG (no script and no chart library in the browser)."""

from __future__ import annotations

from dataclasses import dataclass

ROW = 24  # px per bar
LABEL_WIDTH = 210
BAR_AREA = 330
WIDTH = LABEL_WIDTH + BAR_AREA + 60
LABEL_CHARS = 26  # what fits in LABEL_WIDTH at the chart's type size


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: int
    y: int
    width: float


@dataclass(frozen=True, slots=True)
class Chart:
    """A bar chart: its bars, and the size of its drawing."""

    bars: tuple[Bar, ...]
    width: int = WIDTH
    label_width: int = LABEL_WIDTH

    @property
    def height(self) -> int:
        return max(1, len(self.bars)) * ROW + 4


def _short(label: str, most: int = LABEL_CHARS) -> str:
    """A label that fits beside its bar (the table beside the chart has it whole)."""
    return label if len(label) <= most else label[: most - 1].rstrip() + "…"


def bar_chart(rows: list[tuple[str, int]]) -> Chart:
    """Bars for (label, value) rows, the largest value filling the bar area."""
    largest = max((value for _label, value in rows), default=0) or 1
    return Chart(
        tuple(
            Bar(_short(label), value, index * ROW, round(BAR_AREA * value / largest, 1))
            for index, (label, value) in enumerate(rows)
        )
    )

"""Bar charts drawn as SVG on the server: no script, any screen width, either scheme.

A chart is rows of (label, value, link). Each row is two lines of the SVG: the label,
then a bar whose width is a percentage of the chart's width, with the value written after
it. Widths in percent and text in CSS pixels (no viewBox) keep the text at the page's
size on a phone and on a wide screen alike; colours come from the stylesheet's scheme
variables (templates/static/style.css, `.chart`). Every row is a link (the drill-down);
templates/_charts.html draws it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# Rows are this many CSS pixels apart; a bar is at most this share of the width (the rest
# holds its value's text).
ROW_HEIGHT = 38
MAX_BAR_PERCENT = 72.0


@dataclass(frozen=True)
class Bar:
    """One row of a chart."""

    label: str
    value: int
    text: str  # the value as shown ("17,021 specs", "2.3 GiB")
    href: str
    percent: float  # the bar's width, in percent of the chart's width
    y: int  # the top of its row, in CSS pixels


@dataclass(frozen=True)
class Chart:
    """A titled list of bars (id: the figure's HTML id)."""

    id: str
    title: str
    bars: list[Bar]

    row_height = ROW_HEIGHT

    @property
    def height(self) -> int:
        """The SVG's height in CSS pixels."""
        return ROW_HEIGHT * len(self.bars)


def bar_chart(
    id_: str, title: str, rows: Iterable[tuple[str, int, str]], unit: str = "specs"
) -> Chart:
    """A chart of (label, value, href) rows, in the given order; unit "bytes" writes
    values as sizes, any other (a plural noun) after the count ("1,024 specs", "1 spec")."""
    rows = list(rows)
    top = max((value for _, value, _ in rows), default=0)
    bars = [
        Bar(
            label=label,
            value=value,
            text=size_text(value) if unit == "bytes" else count_text(value, unit),
            href=href,
            percent=round(MAX_BAR_PERCENT * max(0, value) / top, 2) if top > 0 else 0.0,
            y=i * ROW_HEIGHT,
        )
        for i, (label, value, href) in enumerate(rows)
    ]
    return Chart(id_, title, bars)


def size_text(size: int) -> str:
    """A byte count for people: 0 B, 980 B, 1.5 KiB, 2.3 GiB."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{size:,} B" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def count_text(count: int, plural: str) -> str:
    """'1 spec', '2,048 specs': a count and its noun."""
    return f"{count:,} {plural[:-1] if count == 1 and plural.endswith('s') else plural}"

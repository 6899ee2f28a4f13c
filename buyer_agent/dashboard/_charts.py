"""The spend chart: bars of spend (and open commitments) per UTC day against the daily limit, as SVG.

Drawn on the server, no script and nothing fetched: plain SVG elements, every text escaped (a
pairing id comes from the market). Amounts are labelled from base units through :class:`Money`;
only pixel positions are computed in floating point.
"""

from __future__ import annotations

from html import escape

from markupsafe import Markup

from buyer_agent.dashboard._data import SpendSeries

__all__ = ["spend_chart"]

_W, _H = 760, 280
_LEFT, _RIGHT, _TOP, _BOTTOM = 96, 24, 36, 48
#: At most this many days are drawn (the latest ones).
MAX_DAYS = 30


def _text(x: float, y: float, text: str, *, anchor: str = "middle", cls: str = "axis") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" class="{cls}">{escape(text)}</text>'


def spend_chart(series: SpendSeries) -> Markup:
    """One pairing's spend per day, stacked spent + committed, with the daily limit as a dashed line."""
    days = series.days[-MAX_DAYS:]
    top = max([series.limit or 0, *(spent + committed for _, spent, committed in days), 1])
    scale = top * 1.15
    plot_w = _W - _LEFT - _RIGHT
    plot_h = _H - _TOP - _BOTTOM
    base = _TOP + plot_h

    def y(units: int) -> float:
        return base - plot_h * units / scale

    title = f"{series.pairing_id} — {series.currency}"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}" '
        f'role="img" class="chart" aria-label="{escape(f"spend per day of {title}")}">',
        f"<title>{escape(f'Spend per day: {title}')}</title>",
        _text(_LEFT, 20, title, anchor="start", cls="chart-title"),
        f'<line x1="{_LEFT}" y1="{base}" x2="{_W - _RIGHT}" y2="{base}" class="axis-line"/>',
        _text(_LEFT - 8, base + 4, series.text(0), anchor="end"),
        _text(_LEFT - 8, y(top) + 4, series.text(top), anchor="end"),
    ]
    if days:
        slot = plot_w / len(days)
        bar = min(48.0, slot * 0.6)
        for i, (day, spent, committed) in enumerate(days):
            x = _LEFT + slot * i + (slot - bar) / 2
            label = f"{day}: spent {series.text(spent)}, committed {series.text(committed)}"
            parts.append(f'<g class="day"><title>{escape(label)}</title>')
            if spent:
                parts.append(
                    f'<rect x="{x:.1f}" y="{y(spent):.1f}" width="{bar:.1f}" '
                    f'height="{base - y(spent):.1f}" class="bar-spent"/>'
                )
            if committed:
                parts.append(
                    f'<rect x="{x:.1f}" y="{y(spent + committed):.1f}" width="{bar:.1f}" '
                    f'height="{y(spent) - y(spent + committed):.1f}" class="bar-committed"/>'
                )
            parts.append("</g>")
            parts.append(_text(x + bar / 2, base + 18, day[5:]))
    else:
        parts.append(_text(_LEFT + plot_w / 2, _TOP + plot_h / 2, "nothing spent yet"))
    if series.limit is not None:
        ly = y(series.limit)
        parts.append(
            f'<line x1="{_LEFT}" y1="{ly:.1f}" x2="{_W - _RIGHT}" y2="{ly:.1f}" class="limit-line"/>'
        )
        parts.append(
            _text(_W - _RIGHT, ly - 6, f"daily limit {series.text(series.limit)}", anchor="end", cls="limit")
        )
    legend_y = _H - 10
    parts.append(f'<rect x="{_LEFT}" y="{legend_y - 9}" width="10" height="10" class="bar-spent"/>')
    parts.append(_text(_LEFT + 14, legend_y, "spent", anchor="start"))
    parts.append(f'<rect x="{_LEFT + 70}" y="{legend_y - 9}" width="10" height="10" class="bar-committed"/>')
    parts.append(_text(_LEFT + 84, legend_y, "committed (open)", anchor="start"))
    parts.append("</svg>")
    return Markup("".join(parts))

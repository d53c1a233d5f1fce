"""Small line plots drawn on the server as SVG (no script, no chart library): a sensor page's last 24 hours
and 30 days. For PM10 and PM2.5 the bands are drawn behind the line, so the plot reads without numbers; each
plot has a title and description for screen readers, and the page gives the same points as a table."""

from __future__ import annotations

from datetime import datetime
from html import escape

from markupsafe import Markup

from smartcity.sensing.air import BANDS, THRESHOLDS

WIDTH, HEIGHT = 360, 160
LEFT, RIGHT, TOP, BOTTOM = 36, 8, 8, 22


def line_plot(
    points: list[tuple[int, float]],
    *,
    start: int,
    end: int,
    title: str,
    description: str,
    quantity: str,
    tz,
    time_format: str = "%H:%M",
) -> Markup:
    """An SVG line of (epoch seconds, value) over [start, end]; gaps longer than three steps break the line."""
    values = [v for _, v in points]
    top = max(values + [1.0])
    if quantity in THRESHOLDS:
        top = max(top, THRESHOLDS[quantity][1] * 1.2)
    top *= 1.05
    span = max(end - start, 1)
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(t: float) -> float:
        return LEFT + (t - start) / span * inner_w

    def y(v: float) -> float:
        return TOP + inner_h - v / top * inner_h

    parts = [
        f'<svg class="plot" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="{_id(title)}-t {_id(title)}-d"'
        ' xmlns="http://www.w3.org/2000/svg" preserveAspectRatio="xMidYMid meet">',
        f'<title id="{_id(title)}-t">{escape(title)}</title><desc id="{_id(title)}-d">{escape(description)}</desc>',
    ]
    if quantity in THRESHOLDS:
        lows = (0, *THRESHOLDS[quantity])
        for band, low, high in zip(BANDS, lows, (*lows[1:], None), strict=True):
            if low >= top:
                break
            y0, y1 = y(min(high, top) if high is not None else top), y(low)
            parts.append(
                f'<rect x="{LEFT}" y="{y0:.1f}" width="{inner_w}" height="{y1 - y0:.1f}" fill="{band.colour}"'
                ' fill-opacity="0.12"/>'
            )
    for frac in (0, 0.5, 1):
        v = top * frac
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#94a3b8"'
            ' stroke-width="0.5"/>'
            f'<text x="{LEFT - 4}" y="{y(v) + 4:.1f}" text-anchor="end" font-size="10" fill="#334155">{v:.0f}</text>'
        )
    for frac in (0, 0.5, 1):
        t = start + span * frac
        label = datetime.fromtimestamp(t, tz).strftime(time_format)
        anchor = ("start", "middle", "end")[int(frac * 2)]
        parts.append(
            f'<text x="{x(t):.1f}" y="{HEIGHT - 6}" text-anchor="{anchor}" font-size="10" fill="#334155">{label}</text>'
        )
    step = _step(points)
    path, last = [], None
    for t, v in points:
        move = last is None or t - last > 3 * step
        path.append(f"{'M' if move else 'L'}{x(t):.1f},{y(v):.1f}")
        last = t
    if path:
        parts.append(f'<path d="{" ".join(path)}" fill="none" stroke="#0f172a" stroke-width="1.5"/>')
    if len(points) == 1:
        t, v = points[0]
        parts.append(f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="2.5" fill="#0f172a"/>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _step(points: list[tuple[int, float]]) -> int:
    gaps = sorted(b[0] - a[0] for a, b in zip(points, points[1:], strict=False))
    return gaps[len(gaps) // 2] if gaps else 1


def _id(title: str) -> str:
    return "plot-" + "".join(c if c.isalnum() else "-" for c in title.lower())[:40]

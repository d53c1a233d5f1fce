"""Trends of the city's reports per category and district over time, with their seasonality.

The reports come from the reports module's open-data rows (`public_reports`: no reporter, no contact, no
description), so nothing here can reach a person. Two views of the same events, in the city's local time:

- the series: counts per period (ISO week starting Monday, or calendar month) per category and district, with a
  trailing rolling mean over `window` periods as the trend and `count - trend` as the residual (a "rolling-mean
  decomposition": no seasonal term at this scale, the weekly pattern is the profile below);
- the profile: counts per weekday (0 = Monday) × local hour, the week's shape of the filtered events.
"""

from __future__ import annotations

import csv
import io
from html import escape
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from smartcity.core.context import context_of
from smartcity.core.errors import InvalidInput

PERIODS = {"week": "W-SUN", "month": "M"}
SERIES_FIELDS = ("period", "category", "district", "count", "trend", "residual")


def report_events(db) -> pd.DataFrame:
    """Every report as (time in the city's local time, category code, district code), from its open-data rows."""
    from smartcity.reports.opendata_rows import public_reports

    tz = ZoneInfo(context_of(db).profile.timezone)
    with db.session() as s:
        rows = [(r["created_at"], r["category_code"], r["district_code"]) for r in public_reports(s)]
    frame = pd.DataFrame(rows, columns=["time", "category", "district"])
    frame["time"] = pd.to_datetime(frame["time"], utc=True).dt.tz_convert(tz)
    frame["district"] = frame["district"].fillna("")
    return frame


def _filtered(events: pd.DataFrame, category: str, district: str) -> pd.DataFrame:
    if category:
        events = events[events["category"] == category]
    if district:
        events = events[events["district"] == district]
    return events


def series(
    events: pd.DataFrame, *, period: str = "week", window: int = 4, category: str = "", district: str = ""
) -> list[dict]:
    """Counts per period per (category, district), empty periods counted as 0, with the trailing rolling mean
    over `window` periods (fewer at the start) and the residual."""
    if period not in PERIODS:
        raise InvalidInput("period must be week or month", code="invalid_period")
    if not 1 <= window <= 52:
        raise InvalidInput("window must be 1 to 52 periods", code="invalid_window")
    events = _filtered(events, category, district)
    if events.empty:
        return []
    local = events["time"].dt.tz_localize(None)
    keyed = events.assign(period=local.dt.to_period(PERIODS[period]))
    out: list[dict] = []
    for (cat, dist), group in keyed.groupby(["category", "district"], sort=True):
        counts = group.groupby("period").size()
        full = pd.period_range(counts.index.min(), counts.index.max(), freq=counts.index.freq)
        counts = counts.reindex(full, fill_value=0)
        trend = counts.rolling(window, min_periods=1).mean()
        for p, n, t in zip(counts.index, counts.to_numpy(), trend.to_numpy(), strict=True):
            out.append(
                {
                    "period": p.start_time.date().isoformat(),
                    "category": cat,
                    "district": dist,
                    "count": int(n),
                    "trend": round(float(t), 3),
                    "residual": round(float(n - t), 3),
                }
            )
    return out


def profile(events: pd.DataFrame, *, category: str = "", district: str = "") -> np.ndarray:
    """Counts per weekday (row 0 = Monday) × local hour (column): a 7 × 24 array of ints."""
    events = _filtered(events, category, district)
    grid = np.zeros((7, 24), dtype=np.int64)
    if not events.empty:
        np.add.at(grid, (events["time"].dt.day_of_week.to_numpy(), events["time"].dt.hour.to_numpy()), 1)
    return grid


def series_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SERIES_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def series_plot(rows: list[dict], label: str, width: int = 360, height: int = 140) -> str:
    """All filtered events' counts per period as bars and their rolling mean as a line, in SVG."""
    totals: dict[str, list[float]] = {}
    for r in rows:
        t = totals.setdefault(r["period"], [0, 0.0])
        t[0] += r["count"]
        t[1] += r["trend"]
    periods = sorted(totals)
    top = max((max(v) for v in totals.values()), default=0) or 1
    bar = width / max(len(periods), 1)
    parts = [
        f'<svg viewBox="0 0 {width} {height + 16}" role="img" aria-label="{escape(label)}" class="trend-plot" '
        'xmlns="http://www.w3.org/2000/svg">'
    ]
    points = []
    for i, p in enumerate(periods):
        n, t = totals[p]
        tall = (height - 4) * n / top
        parts.append(
            f'<rect x="{i * bar + 1:.1f}" y="{height - tall:.1f}" width="{max(bar - 2, 1):.1f}" height="{tall:.1f}" '
            f'fill="#93c5fd" data-period="{p}" data-count="{n}"><title>{p}: {n}</title></rect>'
        )
        points.append(f"{i * bar + bar / 2:.1f},{height - (height - 4) * t / top:.1f}")
    if points:
        parts.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="#1d4ed8" stroke-width="2"/>')
        for i in (0, len(periods) - 1):
            anchor = "start" if i == 0 else "end"
            x = 0 if i == 0 else width
            parts.append(f'<text x="{x}" y="{height + 13}" font-size="10" text-anchor="{anchor}">{periods[i]}</text>')
    parts.append("</svg>")
    return "".join(parts)


def profile_plot(grid: np.ndarray, label: str, days: list[str], cell: int = 14) -> str:
    """The weekday × hour profile as a heat map in SVG: darker is more."""
    top = int(grid.max()) or 1
    left = 28
    parts = [
        f'<svg viewBox="0 0 {left + 24 * cell} {7 * cell + 14}" role="img" aria-label="{escape(label)}" '
        'class="profile-plot" xmlns="http://www.w3.org/2000/svg">'
    ]
    for d in range(7):
        parts.append(f'<text x="0" y="{d * cell + cell - 3}" font-size="10">{escape(days[d])}</text>')
        for h in range(24):
            n = int(grid[d, h])
            alpha = 0.08 + 0.92 * n / top if n else 0.03
            parts.append(
                f'<rect x="{left + h * cell}" y="{d * cell}" width="{cell - 1}" height="{cell - 1}" '
                f'fill="#1d4ed8" fill-opacity="{alpha:.2f}" data-day="{d}" data-hour="{h}" data-count="{n}">'
                f"<title>{escape(days[d])} {h}: {n}</title></rect>"
            )
    for h in range(0, 24, 6):
        parts.append(f'<text x="{left + h * cell}" y="{7 * cell + 11}" font-size="10">{h}</text>')
    parts.append("</svg>")
    return "".join(parts)

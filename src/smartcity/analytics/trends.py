"""Trends of the city's reports per category and district over time, with their seasonality.

The reports come from the reports module's open-data rows (`public_reports`: no reporter, no contact, no
description), so nothing here can reach a person. Two views of the same events, in the city's local time:

- the series: counts per period (ISO week starting Monday, or calendar month) per category and district, with a
  trailing rolling mean over `window` periods as the trend and `count - trend` as the residual (a "rolling-mean
  decomposition": no seasonal term at this scale, the weekly pattern is the profile below);
- the profile: counts per weekday (0 = Monday) × local hour, the week's shape of the filtered events.

Day by day, for every source — reports, the safety service's incidents (counts per day, district and kind from
`safety.service.incident_counts`: never a person or a position) and ultrafine dust (each district's daily PM2.5
mean from `sensing.service.district_daily_means`, over the sensing roll-ups) — the series is split by a
*classical additive decomposition* with a weekly season: the trend is the centred 7-day moving average, the
season each weekday's mean of (value − trend), centred on zero, and the residual what is left
(value − trend − season). The first and last three days have no trend (the average needs three days each side).

Incidents are about people (a protected person's SOS or danger): a day's count of one kind in one district under
the analytics k threshold (`SMARTCITY_ANALYTICS_K_ANONYMITY`, the H3 cells' own) is withheld as soon as it is
read (`incident_days`), so no later step can show it, add it up or decompose it: every sum is of the published
counts, and a withheld count is null with `suppressed` set. Reports (public open data) and PM2.5 (sensor means)
are not withheld.
"""

from __future__ import annotations

import csv
import io
from datetime import date
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


# --- day by day: reports, incidents and PM2.5, with their weekly season -----------------------------------

SEASON = 7  # days: the weekly cycle
DAY_FIELDS = ("day", "value", "trend", "seasonal", "residual", "filled", "suppressed")
# How each source's days are combined when several categories or districts are shown together: counts add up,
# a district's mean PM2.5 does not (the city's is the mean of its districts' means).
SOURCES = {"reports": "count", "incidents": "count", "pm25": "mean"}
# Sources whose counts are about people: small counts are withheld (k-anonymity), as the H3 cells' are.
PERSONAL = frozenset({"incidents"})


def period_of(start: str, end: str) -> tuple[date | None, date | None]:
    """The analyst's period as its first and last local day (either may be open), or InvalidInput naming why."""
    try:
        first = date.fromisoformat(start) if start else None
        last = date.fromisoformat(end) if end else None
    except ValueError:
        raise InvalidInput(
            f"the period's first and last days are dates written YYYY-MM-DD, not {start or '-'} / {end or '-'}",
            code="invalid_period_day",
        ) from None
    if first and last and first > last:
        raise InvalidInput(f"the period starts on {first}, after it ends on {last}", code="invalid_period_order")
    return first, last


def within(days: pd.DataFrame, first: date | None, last: date | None) -> pd.DataFrame:
    """The rows of `days` (a `day` column of dates) in the period, both ends included."""
    if first is not None:
        days = days[days["day"] >= first]
    if last is not None:
        days = days[days["day"] <= last]
    return days


def events_within(events: pd.DataFrame, first: date | None, last: date | None) -> pd.DataFrame:
    """The report events whose local day is in the period."""
    if events.empty:
        return events
    return within(events.assign(day=events["time"].dt.date), first, last).drop(columns="day")


def report_days(events: pd.DataFrame) -> pd.DataFrame:
    """Reports per local day, category and district (day, category, district, value)."""
    if events.empty:
        return pd.DataFrame(columns=["day", "category", "district", "value"])
    days = events.assign(day=events["time"].dt.date)
    days = days.groupby(["day", "category", "district"], as_index=False).size().rename(columns={"size": "value"})
    return days.assign(suppressed=False)


def k_anonymity(db) -> int:
    """The analytics k threshold of `db`'s app (the setting the H3 cells use)."""
    from smartcity.analytics.settings import AnalyticsSettings

    return context_of(db).settings_of(AnalyticsSettings).k_anonymity


def withhold(days: pd.DataFrame, k: int) -> pd.DataFrame:
    """`days` with each count from 1 to k − 1 replaced by null and marked `suppressed` (0 names nobody)."""
    small = (days["value"] > 0) & (days["value"] < k)
    return days.assign(value=days["value"].astype("float64").mask(small), suppressed=small)


def incident_days(db, k: int | None = None) -> pd.DataFrame:
    """The safety service's incidents per local day, kind (as the category) and district: counts only, each
    under k (default: the setting) withheld (`withhold`) before anything else sees it."""
    from smartcity.safety.service import incident_counts

    with db.session() as s:
        rows = incident_counts(s)
    frame = pd.DataFrame(rows, columns=["day", "district", "kind", "count"])
    frame = frame.rename(columns={"kind": "category", "count": "value"})
    frame["day"] = pd.to_datetime(frame["day"]).dt.date
    return withhold(frame[["day", "category", "district", "value"]], k_anonymity(db) if k is None else k)


def pm25_days(db) -> pd.DataFrame:
    """Each district's daily PM2.5 mean (µg/m³) from the sensing roll-ups; the category is "pm25"."""
    from smartcity.sensing.service import district_daily_means

    with db.session() as s:
        rows = district_daily_means(s, "pm25")
    frame = pd.DataFrame(rows, columns=["day", "district", "mean", "readings", "sensors"])
    frame = frame.assign(category="pm25", value=frame["mean"], suppressed=False)
    frame["day"] = pd.to_datetime(frame["day"]).dt.date
    return frame[["day", "category", "district", "value", "suppressed"]]


def source_days(db, source: str) -> pd.DataFrame:
    """A source's rows (day, category, district, value, suppressed); a person's source withheld under k."""
    if source == "reports":
        return report_days(report_events(db))
    if source == "incidents":
        return incident_days(db)
    if source == "pm25":
        return pm25_days(db)
    raise InvalidInput("source must be reports, incidents or pm25", code="invalid_source")


def decompose(days: pd.DataFrame, *, how: str = "count", category: str = "", district: str = "") -> dict:
    """The filtered days as one daily series split into trend, weekly season and residual (classical additive
    decomposition, see the module's docstring). Days without a row are 0 for counts; for means they are
    interpolated between their neighbours and marked `filled`. Withheld rows (`suppressed`, value null) are
    left out of every sum: the series decomposed is what is published. A day with a withheld row is marked
    `suppressed`; its value is the sum of its published rows, or null (and its residual too) when it has none.
    Returns {"rows": [...], "weekly": [7 values, Monday first] or None when the series is shorter than two
    weeks}."""
    days = _filtered(days, category, district)
    if days.empty:
        return {"rows": [], "weekly": None}
    if "suppressed" not in days:
        days = days.assign(suppressed=False)
    grouped = days.groupby("day")
    per_day = grouped["value"].agg("sum" if how == "count" else "mean")
    per_day.index = pd.DatetimeIndex(per_day.index)
    full = pd.date_range(per_day.index.min(), per_day.index.max(), freq="D")
    filled = ~full.isin(per_day.index)
    withheld = grouped["suppressed"].any().set_axis(per_day.index).reindex(full, fill_value=False)
    published = grouped["value"].count().set_axis(per_day.index).reindex(full, fill_value=0) > 0
    hidden = withheld & ~published  # nothing of the day is published: its value would read as a count
    values = per_day.reindex(full)
    values = values.fillna(0) if how == "count" else values.interpolate()
    trend = values.rolling(SEASON, center=True).mean()
    weekly = None
    seasonal = pd.Series(np.nan, index=full)
    if len(full) >= 2 * SEASON:
        by_weekday = (values - trend).groupby(full.day_of_week).mean()
        by_weekday = by_weekday - by_weekday.mean()
        weekly = [round(float(by_weekday[d]), 3) for d in range(SEASON)]
        seasonal = pd.Series(by_weekday.reindex(full.day_of_week).to_numpy(), index=full)
    residual = values - trend - seasonal

    def num(x: float) -> float | None:
        return None if pd.isna(x) else round(float(x), 3)

    rows = [
        {
            "day": d.date().isoformat(),
            "value": None if h else num(v),
            "trend": num(t),
            "seasonal": num(se),
            "residual": None if h else num(r),
            "filled": bool(f),
            "suppressed": bool(w),
        }
        for d, v, t, se, r, f, w, h in zip(
            full, values, trend, seasonal, residual, filled, withheld, hidden, strict=True
        )
    ]
    return {"rows": rows, "weekly": weekly}


def days_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=DAY_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def days_parquet(rows: list[dict]) -> bytes:
    """The daily series as typed Parquet (day a date; an empty trend, season or residual is null)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("day", pa.date32()),
            *((f, pa.float64()) for f in DAY_FIELDS[1:-2]),
            ("filled", pa.bool_()),
            ("suppressed", pa.bool_()),
        ]
    )
    typed = [{**r, "day": date.fromisoformat(r["day"])} for r in rows]
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(typed, schema=schema), sink)
    return sink.getvalue()


def days_plot(rows: list[dict], label: str, withheld: str = "", width: int = 360, height: int = 140) -> str:
    """The daily values as bars and their trend as a line, in SVG. A withheld day (value null) is a grey mark
    at the base titled `withheld`, with no number; a day with some rows withheld says so in `data-suppressed`."""
    top = max((max(r["value"] or 0, r["trend"] or 0) for r in rows), default=0) or 1
    bar = width / max(len(rows), 1)
    parts = [
        f'<svg viewBox="0 0 {width} {height + 16}" role="img" aria-label="{escape(label)}" class="days-plot" '
        'xmlns="http://www.w3.org/2000/svg">'
    ]
    line: list[str] = []
    for i, r in enumerate(rows):
        if r["value"] is None and r.get("suppressed"):
            parts.append(
                f'<rect class="suppressed" x="{i * bar + 0.5:.1f}" y="{height - 3}" width="{max(bar - 1, 0.5):.1f}" '
                f'height="3" fill="#94a3b8" data-day="{r["day"]}" data-suppressed="true">'
                f"<title>{r['day']}: {escape(withheld)}</title></rect>"
            )
            continue
        v = r["value"] or 0
        tall = (height - 4) * v / top
        marker = ' data-suppressed="true"' if r.get("suppressed") else ""
        parts.append(
            f'<rect x="{i * bar + 0.5:.1f}" y="{height - tall:.1f}" width="{max(bar - 1, 0.5):.1f}" '
            f'height="{tall:.1f}" fill="#93c5fd" data-day="{r["day"]}" data-value="{v:g}"{marker}>'
            f"<title>{r['day']}: {v:g}</title></rect>"
        )
        if r["trend"] is not None:
            line.append(f"{i * bar + bar / 2:.1f},{height - (height - 4) * r['trend'] / top:.1f}")
    if line:
        parts.append(
            f'<polyline class="trend" points="{" ".join(line)}" fill="none" stroke="#1d4ed8" stroke-width="2"/>'
        )
    if rows:
        parts.append(f'<text x="0" y="{height + 13}" font-size="10">{rows[0]["day"]}</text>')
        parts.append(f'<text x="{width}" y="{height + 13}" font-size="10" text-anchor="end">{rows[-1]["day"]}</text>')
    parts.append("</svg>")
    return "".join(parts)


def weekly_plot(weekly: list[float], label: str, days: list[str], width: int = 360, height: int = 120) -> str:
    """The weekly season (each weekday above or below the trend) as bars around a zero line, in SVG."""
    top = max((abs(v) for v in weekly), default=0) or 1
    mid = height / 2
    bar = width / SEASON
    parts = [
        f'<svg viewBox="0 0 {width} {height + 16}" role="img" aria-label="{escape(label)}" class="weekly-plot" '
        'xmlns="http://www.w3.org/2000/svg">',
        f'<line x1="0" x2="{width}" y1="{mid}" y2="{mid}" stroke="#64748b"/>',
    ]
    for d, v in enumerate(weekly):
        tall = (mid - 4) * abs(v) / top
        y = mid - tall if v >= 0 else mid
        colour = "#b91c1c" if v >= 0 else "#1d4ed8"
        parts.append(
            f'<rect x="{d * bar + 4:.1f}" y="{y:.1f}" width="{bar - 8:.1f}" height="{tall:.1f}" fill="{colour}" '
            f'data-weekday="{d}" data-seasonal="{v:g}"><title>{escape(days[d])}: {v:+g}</title></rect>'
            f'<text x="{d * bar + bar / 2:.1f}" y="{height + 13}" font-size="10" text-anchor="middle">'
            f"{escape(days[d])}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def days_geojson(
    days: pd.DataFrame,
    districts: dict,
    *,
    how: str = "count",
    category: str = "",
    source: str = "",
    period=("", ""),
    k: int | None = None,
) -> dict:
    """The daily series per district on the district's polygon (`districts`: the platform's district
    FeatureCollection, core.geo): properties `district`, `name`, the period, `total` (counts: their sum; means:
    the mean of the days), each day's value under its date (flat, for a GIS's join), and `series` (the day rows
    with trend, season, residual). Count series share the period's days (a district without a row counts 0);
    a mean is null before a district's first and after its last measured day. Withheld days (`decompose`) are
    null and left out of `total`; `suppressed_days` counts them, and the collection's `k_anonymity` is the
    threshold `k` they were withheld under (null: the source is not withheld)."""
    if days.empty:
        first = last = None
    else:
        first, last = min(days["day"]), max(days["day"])
    features = []
    for shape in districts["features"]:
        code = shape["properties"]["code"]
        own = _filtered(days[days["district"] == code], category, "")
        if how == "count" and first is not None:
            # Zero rows on the first and last days give every district's series the same days (only where the
            # district has no row: a withheld day stays withheld, not 0).
            missing = [d for d in dict.fromkeys((first, last)) if d not in set(own["day"])]
            if missing:
                edges = pd.DataFrame(
                    {"day": missing, "category": category or "", "district": code, "value": 0, "suppressed": False}
                )
                own = pd.concat([own, edges], ignore_index=True) if not own.empty else edges
        found = decompose(own, how=how, category=category) if not own.empty else {"rows": [], "weekly": None}
        values = [r["value"] for r in found["rows"] if r["value"] is not None]
        total = None
        if values:
            total = round(float(sum(values)), 3) if how == "count" else round(float(np.mean(values)), 3)
        properties = {
            "district": code,
            "name": shape["properties"].get("name"),
            "source": source,
            "category": category or None,
            "start": period[0] or None,
            "end": period[1] or None,
            "total": total,
            "suppressed_days": sum(1 for r in found["rows"] if r["suppressed"]),
        }
        properties.update({r["day"]: r["value"] for r in found["rows"]})
        properties["series"] = found["rows"]
        features.append({"type": "Feature", "geometry": shape["geometry"], "properties": properties})
    return {"type": "FeatureCollection", "k_anonymity": k, "features": features}

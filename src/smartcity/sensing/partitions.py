"""PostgreSQL: `sensing_readings` partitioned by RANGE of `observed_at` (epoch seconds) into calendar months
(UTC), `sensing_readings_YYYY_MM`, plus `sensing_readings_default` for a reading no month partition holds.

The `sensing.rollup` job makes the coming months ahead (`ensure_months`) and, for retention, drops a month once
all of it is older than the raw retention cutoff (`drop_months_before`) instead of deleting its rows one by one;
what remains before the cutoff (the cutoff's own month, the default partition) is deleted as on SQLite, which
keeps one table. A query for one sensor over 30 days touches at most two months (partition pruning), each an
index range scan of its primary key.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from sqlalchemy import text

TABLE = "sensing_readings"
DEFAULT = f"{TABLE}_default"
MONTHS_AHEAD = 2
_NAME = re.compile(rf"^{TABLE}_(\d{{4}})_(\d{{2}})$")


def month_start(year: int, month: int) -> int:
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp())


def next_month(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def name_of(year: int, month: int) -> str:
    return f"{TABLE}_{year:04d}_{month:02d}"


def months(conn) -> dict[str, tuple[int, int] | None]:
    """The table's partitions: name → (year, month), None for the default."""
    rows = conn.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = :t"
        ),
        {"t": TABLE},
    ).scalars()
    out: dict[str, tuple[int, int] | None] = {}
    for name in rows:
        m = _NAME.match(name)
        out[name] = (int(m[1]), int(m[2])) if m else None
    return out


def ensure_months(conn, first: date, last: date) -> list[str]:
    """Make the missing month partitions from `first`'s month to `last`'s; a month whose rows already sit in
    the default partition is left there (attaching it would fail)."""
    have = months(conn)
    made = []
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        name = name_of(year, month)
        lo, hi = month_start(year, month), month_start(*next_month(year, month))
        if name not in have:
            stray = (
                DEFAULT in have
                and conn.execute(
                    text(f"SELECT 1 FROM {DEFAULT} WHERE observed_at >= :lo AND observed_at < :hi LIMIT 1"),
                    {"lo": lo, "hi": hi},
                ).first()
            )
            if not stray:
                conn.execute(text(f"CREATE TABLE {name} PARTITION OF {TABLE} FOR VALUES FROM ({lo}) TO ({hi})"))
                made.append(name)
        year, month = next_month(year, month)
    return made


def drop_months_before(conn, cutoff: int) -> dict[str, int]:
    """Drop the month partitions wholly before `cutoff` (epoch seconds); returns {partition: rows it held}."""
    dropped = {}
    for name, ym in sorted(months(conn).items()):
        if ym is not None and month_start(*next_month(*ym)) <= cutoff:
            dropped[name] = conn.execute(text(f"SELECT count(*) FROM {name}")).scalar_one()
            conn.execute(text(f"DROP TABLE {name}"))
    return dropped


def maintain(conn, cutoff: int, now: float) -> dict[str, int]:
    """The roll-up job's part on PostgreSQL, in its transaction: the months ahead made, the months wholly
    before `cutoff` dropped ({partition: rows it held})."""
    today = datetime.fromtimestamp(now, UTC).date()
    y, m = today.year, today.month
    for _ in range(MONTHS_AHEAD):
        y, m = next_month(y, m)
    ensure_months(conn, today, date(y, m, 1))
    return drop_months_before(conn, cutoff)

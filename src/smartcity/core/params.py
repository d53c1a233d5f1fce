"""Query and form parameters, parsed once for every surface: numbers, whole numbers, lists of numbers,
boxes (bbox) and times.

Each parser takes the raw text (None or "" for "not given"), returns a typed value, and refuses bad input
with `InvalidInput` naming the parameter; a protocol adapter turns that into its own error format.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any

from smartcity.core.errors import InvalidInput

Box = tuple[float, float, float, float]  # west, south, east, north in degrees

# A "+09:00" offset sent unencoded in a query string arrives as " 09:00" (a plus is a space there).
_SPACED_OFFSET = re.compile(r"([T ][0-9:.]+) ([0-9]{2}:?[0-9]{2})$")


def _given(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def number(
    value: Any, name: str, *, lo: float | None = None, hi: float | None = None, code: str = "invalid_parameter"
) -> float | None:
    """A finite number within [lo, hi], or None when not given."""
    if not _given(value):
        return None
    try:
        num = float(value)
    except (TypeError, ValueError):
        num = math.nan
    if (
        isinstance(value, bool)
        or not math.isfinite(num)
        or (lo is not None and num < lo)
        or (hi is not None and num > hi)
    ):
        if lo is not None and hi is not None:
            raise InvalidInput(f"{name} must be a number between {lo:g} and {hi:g}", code=code)
        raise InvalidInput(f"{name} must be a number", code=code)
    return num


def integer(value: Any, name: str, *, default: int, lo: int, hi: int, code: str = "invalid_parameter") -> int:
    """A whole number from lo to hi (digits only: no sign, no decimals), or `default` when not given."""
    if not _given(value):
        return default
    if isinstance(value, bool) or not (isinstance(value, int) or str(value).strip().isdigit()):
        raise InvalidInput(f"{name} must be a whole number from {lo} to {hi}", code=code)
    num = int(value)
    if not lo <= num <= hi:
        raise InvalidInput(f"{name} must be a whole number from {lo} to {hi}", code=code)
    return num


def numbers(value: str | None, n: int, name: str, *, code: str | None = None) -> tuple[float, ...] | None:
    """`n` comma-separated finite numbers ("37.5,127.0,500"), or None when not given."""
    if not _given(value):
        return None
    try:
        parts = tuple(float(v) for v in str(value).split(","))
    except ValueError:
        parts = ()
    if len(parts) != n or not all(math.isfinite(p) for p in parts):
        raise InvalidInput(f"{name} must be {n} comma-separated numbers", code=code or f"invalid_{name}")
    return parts


def bbox(value: str | Sequence[Any] | None, *, code: str = "invalid_bbox") -> Box | None:
    """A box "west,south,east,north" (text or four values) in degrees with west < east and south < north,
    or None when not given."""
    if not _given(value):
        return None
    parts = value.split(",") if isinstance(value, str) else value
    try:
        west, south, east, north = (float(v) for v in parts)
    except (TypeError, ValueError):
        west = south = east = north = math.nan
    if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
        raise InvalidInput(
            "bbox is four numbers: west, south, east, north (degrees; west < east, south < north)", code=code
        )
    return west, south, east, north


def iso_time(text: str, tz: tzinfo | None = UTC) -> datetime | None:
    """ISO 8601 text (a trailing Z, or an offset whose plus became a space, allowed) as a datetime; a time
    without an offset is taken in `tz` (left naive when tz is None). None when the text is not a time."""
    text = _SPACED_OFFSET.sub(r"\1+\2", text.strip())
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo or tz is None else when.replace(tzinfo=tz)


def timestamp(
    value: str | None, name: str, *, tz: tzinfo | None = None, code: str = "invalid_datetime"
) -> datetime | None:
    """An ISO 8601 date and time, or None when not given. Without an offset it is taken in `tz`; when tz is
    None an offset is required."""
    if not _given(value):
        return None
    when = iso_time(value, tz=tz)
    if when is None:
        raise InvalidInput(f"{name} must be an ISO 8601 date and time (e.g. 2024-05-01T09:30:00+09:00)", code=code)
    if when.tzinfo is None:
        raise InvalidInput(f"{name} needs a time zone (e.g. Z or +09:00)", code=code)
    return when

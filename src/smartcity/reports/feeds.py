"""Feed entries: the public updates of reports in an area or district, newest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from smartcity.core.render import Feed, FeedItem
from smartcity.reports.common import _loc, parse_bbox, profile_of, status_name
from smartcity.reports.queries import ReportQuery, search


@dataclass
class FeedEntry:
    id: int
    title: str
    summary: str
    path: str  # /reports/{id}
    updated: datetime
    published: datetime
    lat: float
    lon: float
    category: str
    status: str


def feed_entries(
    session: Session,
    *,
    district: str | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    language: str | None = None,
    limit: int = 50,
) -> list[FeedEntry]:
    """The newest reports in an area, for an Atom feed, in `language` (default: the city's)."""
    language = language or profile_of(session).language
    q = ReportQuery(
        district=[district] if district else None,
        bbox=parse_bbox(bbox) if bbox else None,
        page_size=min(limit, 200),
        include_duplicates=False,
    )
    return [
        FeedEntry(
            r.id,
            r.title,
            r.description[:500],
            f"/reports/{r.id}",
            r.updated_at,
            r.created_at,
            r.lat,
            r.lon,
            _loc(r.category, "name", language),
            status_name(r.status, language),
        )
        for r in search(session, q).items
    ]


def as_feed(entries: list[FeedEntry], title: str) -> Feed:
    """The entries as a feed read model (core.render makes it Atom, with GeoRSS points)."""
    items = [
        FeedItem(e.path, f"{e.category}: {e.title}", f"[{e.status}] {e.summary}", e.updated, e.published, e.lat, e.lon)
        for e in entries
    ]
    return Feed(title, items)

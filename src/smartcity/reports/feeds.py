"""Feed entries: the public updates of reports in an area or district, newest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from xml.etree import ElementTree as ET

from sqlalchemy.orm import Session

from smartcity.reports.common import _loc, _now, parse_bbox, status_name
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
    language: str = "ko",
    limit: int = 50,
) -> list[FeedEntry]:
    """The newest reports in an area, for an Atom feed."""
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


def atom_feed(entries: list[FeedEntry], *, base_url: str, title: str, self_path: str) -> str:
    """An Atom 1.0 document of the entries (with GeoRSS points)."""
    ns = "http://www.w3.org/2005/Atom"
    ET.register_namespace("", ns)
    ET.register_namespace("georss", "http://www.georss.org/georss")
    base = base_url.rstrip("/")
    feed = ET.Element(f"{{{ns}}}feed")
    ET.SubElement(feed, f"{{{ns}}}title").text = title
    ET.SubElement(feed, f"{{{ns}}}id").text = base + self_path
    ET.SubElement(feed, f"{{{ns}}}link", rel="self", href=base + self_path)
    updated = max((e.updated for e in entries), default=_now())
    ET.SubElement(feed, f"{{{ns}}}updated").text = updated.astimezone(UTC).isoformat()
    for e in entries:
        entry = ET.SubElement(feed, f"{{{ns}}}entry")
        ET.SubElement(entry, f"{{{ns}}}id").text = f"{base}{e.path}"
        ET.SubElement(entry, f"{{{ns}}}title").text = f"{e.category}: {e.title}"
        ET.SubElement(entry, f"{{{ns}}}link", href=f"{base}{e.path}")
        ET.SubElement(entry, f"{{{ns}}}updated").text = e.updated.astimezone(UTC).isoformat()
        ET.SubElement(entry, f"{{{ns}}}published").text = e.published.astimezone(UTC).isoformat()
        ET.SubElement(entry, f"{{{ns}}}summary").text = f"[{e.status}] {e.summary}"
        ET.SubElement(entry, "{http://www.georss.org/georss}point").text = f"{e.lat:.6f} {e.lon:.6f}"
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(feed, encoding="unicode")

"""One registry of renderers: a view returns its data once, as a read model, and the request's format
renders it as HTML, JSON, CSV, GeoJSON or Atom (as Datasette renders one `data()` several ways).

- `render(request, model, fmt=None, **context)` picks the format (`fmt` if the route knows it, else the
  path's extension, else the Accept header, else `default`) and calls the renderer registered for the
  model's type (or the nearest base class) in that format; a format nobody renders it in is a 404.
- HTML is one more rendering: `template(name, chrome)` is a renderer that writes a read model through a
  template, the model's fields (or `context(request, model)`) as its values, in a module's page chrome
  (`chrome(request, template, **values)`: its template folder, its helpers). So a page handler returns its
  read model once and never chooses between a page and the data.
- Core renders its own read models: `Table` (rows → JSON, CSV), `Points` (rows with a position → GeoJSON,
  CSV, JSON) and `Feed` (entries → Atom). A module registers renderers for its own read models through its
  declaration (`Module(renderers=[(type, format, fn)])`, applied by `core.module.declare`); `fn(request,
  model, **context)` returns the response, usually by turning its model into one of core's.
- Protocol formats a module speaks on its own paths (Open311's XML) stay in that module's adapter.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from xml.etree import ElementTree as ET

from fastapi import Request
from fastapi.responses import Response

from smartcity.core.errors import NotFound
from smartcity.core.i18n import by_quality

MEDIA_TYPES = {
    "html": "text/html; charset=utf-8",
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "geojson": "application/geo+json",
    "atom": "application/atom+xml; charset=utf-8",
}

# Accept header media types → format; the most specific first (GeoJSON is also JSON).
_ACCEPTED = (
    ("application/geo+json", "geojson"),
    ("application/atom+xml", "atom"),
    ("text/csv", "csv"),
    ("application/json", "json"),
    ("text/html", "html"),
)

Renderer = Callable[..., Response]
_renderers: dict[tuple[type, str], Renderer] = {}


def register(kind: type, fmt: str, renderer: Renderer) -> None:
    """Render read models of `kind` (and its subclasses, unless they have their own) in `fmt`."""
    if fmt not in MEDIA_TYPES:
        raise ValueError(f"unknown format {fmt!r}; formats are: {', '.join(MEDIA_TYPES)}")
    _renderers[(kind, fmt)] = renderer


def renderer_for(kind: type, fmt: str) -> Renderer | None:
    for base in kind.__mro__:
        found = _renderers.get((base, fmt))
        if found is not None:
            return found
    return None


def formats_of(kind: type) -> list[str]:
    """The formats a read model of `kind` can be rendered in."""
    return [fmt for fmt in MEDIA_TYPES if renderer_for(kind, fmt) is not None]


def format_of(request: Request, offered: Iterable[str], default: str) -> str:
    """The format asked for among `offered`: the path's extension (`/x.csv`), else the Accept header's first
    offered media type (by quality, then order), else `default`."""
    offered = tuple(offered)
    last = request.url.path.rsplit("/", 1)[-1]
    if "." in last:
        extension = last.rsplit(".", 1)[1]
        if extension in MEDIA_TYPES:
            return extension
    for media in by_quality(request.headers.get("accept", "")):
        fmt = next((f for m, f in _ACCEPTED if m == media.lower()), None)
        if fmt in offered:
            return fmt
    return default


def render(request: Request, model: Any, fmt: str | None = None, *, default: str = "json", **context) -> Response:
    """`model` rendered in the format the request asks for (see `format_of`); `context` goes to the
    renderer (an HTML page's extra values)."""
    fmt = fmt or format_of(request, formats_of(type(model)), default)
    found = renderer_for(type(model), fmt)
    if found is None:
        raise NotFound(f"no {fmt} rendering of this resource", code="unknown_format")
    return found(request, model, **context)


def template(
    name: str, chrome: Callable[..., Response], context: Callable[[Request, Any], dict] | None = None
) -> Renderer:
    """A renderer writing a read model as the HTML page `name`: `chrome(request, name, **values)` with the
    model's fields as the values (or `context(request, model)`), plus the route's own (`status_code`, …)."""

    def renderer(request: Request, model: Any, **extra) -> Response:
        values = context(request, model) if context else fields_of(model)
        return chrome(request, name, **values, **extra)

    renderer.__name__ = f"template_{name}"
    return renderer


def part(name: str, fmt: str) -> Renderer:
    """A renderer writing the model's member `name` (a read model of its own) in `fmt`: a page's model
    whose data twin is one of its parts."""

    def renderer(request: Request, model: Any, **extra) -> Response:
        return render(request, getattr(model, name), fmt)

    renderer.__name__ = f"part_{name}_{fmt}"
    return renderer


def fields_of(model: Any) -> dict[str, Any]:
    """A dataclass read model's fields by name, not copied (the template reads the model's own values)."""
    return {f.name: getattr(model, f.name) for f in dataclasses.fields(model)}


# --- core's read models ---------------------------------------------------------------------------------


@dataclass
class Table:
    """Rows of a resource named `name` (a download's file name), with its columns in order."""

    name: str
    rows: list[dict]
    columns: Sequence[str] = ()

    def column_names(self) -> list[str]:
        if self.columns:
            return list(self.columns)
        return list(dict.fromkeys(k for row in self.rows for k in row))


@dataclass
class Points(Table):
    """Rows that each stand at a point (`lat`, `lon` fields): also a GeoJSON FeatureCollection."""

    extra: dict[str, Any] = field(default_factory=dict)  # members of the FeatureCollection beside features


@dataclass
class FeedItem:
    """One Atom entry: `path` is the item's page below the site's base URL."""

    path: str
    title: str
    summary: str
    updated: datetime
    published: datetime
    lat: float | None = None
    lon: float | None = None


@dataclass
class Feed:
    title: str
    items: list[FeedItem]


def _csv_safe(value: Any) -> Any:
    # Spreadsheets run cells starting with = + - @ as formulas; people's text must not.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return value


def csv_text(table: Table) -> str:
    """The rows as CSV (UTF-8 text, a header line, formula-looking cells quoted as text)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=table.column_names(), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in table.rows:
        writer.writerow({k: _csv_safe(v) for k, v in row.items()})
    return buf.getvalue()


def feature_collection(points: Points) -> dict:
    """The rows as GeoJSON Point features: the row's `id` as the feature's, the rest as properties."""
    features = []
    for row in points.rows:
        properties = {k: v for k, v in row.items() if k not in ("lat", "lon")}
        features.append(
            {
                "type": "Feature",
                "id": row.get("id"),
                "properties": properties,
                "geometry": {"type": "Point", "coordinates": [row["lon"], row["lat"]]},
            }
        )
    return {"type": "FeatureCollection", **points.extra, "features": features}


ATOM = "http://www.w3.org/2005/Atom"
GEORSS = "http://www.georss.org/georss"


def atom_xml(feed: Feed, base_url: str, self_path: str) -> str:
    """An Atom 1.0 document (with GeoRSS points); ElementTree escapes every text."""
    ET.register_namespace("", ATOM)
    ET.register_namespace("georss", GEORSS)
    base = base_url.rstrip("/")
    root = ET.Element(f"{{{ATOM}}}feed")
    ET.SubElement(root, f"{{{ATOM}}}title").text = feed.title
    ET.SubElement(root, f"{{{ATOM}}}id").text = base + self_path
    ET.SubElement(root, f"{{{ATOM}}}link", rel="self", href=base + self_path)
    updated = max((i.updated for i in feed.items), default=datetime.now(UTC))
    ET.SubElement(root, f"{{{ATOM}}}updated").text = updated.astimezone(UTC).isoformat()
    for item in feed.items:
        entry = ET.SubElement(root, f"{{{ATOM}}}entry")
        ET.SubElement(entry, f"{{{ATOM}}}id").text = f"{base}{item.path}"
        ET.SubElement(entry, f"{{{ATOM}}}title").text = item.title
        ET.SubElement(entry, f"{{{ATOM}}}link", href=f"{base}{item.path}")
        ET.SubElement(entry, f"{{{ATOM}}}updated").text = item.updated.astimezone(UTC).isoformat()
        ET.SubElement(entry, f"{{{ATOM}}}published").text = item.published.astimezone(UTC).isoformat()
        ET.SubElement(entry, f"{{{ATOM}}}summary").text = item.summary
        if item.lat is not None and item.lon is not None:
            ET.SubElement(entry, f"{{{GEORSS}}}point").text = f"{item.lat:.6f} {item.lon:.6f}"
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode")


def json_response(value: Any, media_type: str = MEDIA_TYPES["json"], headers: dict | None = None) -> Response:
    return Response(json.dumps(value, ensure_ascii=False, default=str), media_type=media_type, headers=headers)


def _table_json(request: Request, table: Table) -> Response:
    return json_response({"rows": table.rows})


def _table_csv(request: Request, table: Table) -> Response:
    return Response(
        csv_text(table),
        media_type=MEDIA_TYPES["csv"],
        headers={"Content-Disposition": f'attachment; filename="{table.name}.csv"'},
    )


def _points_geojson(request: Request, points: Points) -> Response:
    return json_response(
        feature_collection(points),
        MEDIA_TYPES["geojson"],
        {"Content-Disposition": f'inline; filename="{points.name}.geojson"'},
    )


def _feed_atom(request: Request, feed: Feed) -> Response:
    self_path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return Response(atom_xml(feed, str(request.base_url), self_path), media_type=MEDIA_TYPES["atom"])


register(Table, "json", _table_json)
register(Table, "csv", _table_csv)
register(Points, "geojson", _points_geojson)
register(Feed, "atom", _feed_atom)

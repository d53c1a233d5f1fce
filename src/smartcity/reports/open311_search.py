"""Open311 GET requests, the hot path: the page's ids from the service's query builder rendered as plain SQL,
only the needed columns of just those rows, names from memory, times formatted fast."""

from __future__ import annotations

from datetime import datetime, timedelta

import orjson
from fastapi import Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route

from smartcity.core.db import utcnow
from smartcity.core.errors import InvalidInput
from smartcity.core.geo import geo_index
from smartcity.core.i18n import localized
from smartcity.core.params import integer, number
from smartcity.reports import queries
from smartcity.reports import service as S
from smartcity.reports.open311_wire import (
    DEFAULT_DAYS,
    DEFAULT_RADIUS_M,
    MAX_RADIUS_M,
    MAX_REQUESTS,
    MYSOCIETY_STATUS,
    _base_url,
    _csv_param,
    _db,
    _format,
    _from,
    _through,
    _truthy,
    _tz,
    _w3c,
    check_jurisdiction,
    language,
    local_time,
    names,
    respond,
)

# --- GET requests: the hot path ---------------------------------------------------------------------------
#
# Plain SQL on the pool's DBAPI connection (no ORM, no per-request SQLAlchemy compile), the page's ids from
# the service's own query builder (`queries.terms` rendered by `queries.page_sql`), so a filter means the
# same here as on every other surface. Category and unit names come from `names()`; timestamps are read as
# stored and formatted here.

COLUMNS = (
    "id",
    "status",
    "category_code",
    "title",
    "description",
    "unit_id",
    "address_string",
    "lat",
    "lon",
    "created_at",
    "updated_at",
    "due_at",
    "photo_count",
    "media_urls",
)


EXTRA_COLUMNS = ("parent_id", "support_count", "district_code", "attributes")


NOTE_KINDS = ("status", "update", "reassign", "feedback")


def _no_campaign(slug: str) -> int:
    raise InvalidInput("Open311 has no campaign filter", code="invalid_parameter")


def _fetch(conn, db, sqlite: bool, q: S.ReportQuery, units: dict, extensions: bool, size: int):
    """The page's rows (only the needed columns: the ids come from `queries.page_sql` as a subquery, so the
    table is read for just these rows, in one round trip), their reporters' photos' ids and their public
    notes."""
    sql = queries.SqlText(sqlite)
    mark = sql.mark
    cols = ", ".join(COLUMNS + EXTRA_COLUMNS if extensions else COLUMNS)
    look = queries.Lookups(
        unit_id=lambda code: next((i for i, u in units.items() if u[0] == code), None),
        campaign_id=_no_campaign,
        extent=lambda: geo_index(db).extent.bounds,
        now=utcnow(),
    )
    page = queries.page_sql(sql, queries.terms(q, look), "created_desc", size, (max(q.page, 1) - 1) * size)
    cur = conn.cursor()
    try:
        cur.execute(f"SELECT {cols} FROM reports WHERE id IN ({page}) ORDER BY created_at DESC, id DESC", sql.values)
        rows = cur.fetchall()
        photos: dict[int, list[int]] = {}
        entries: dict[int, list] = {}
        if not rows:
            return rows, photos, entries
        with_photos = [r[0] for r in rows if r[12]]
        if with_photos:
            cur.execute(
                # The reporter's photos only: media_url is the request's photo (GeoReport v2), never the
                # after-photo of a fix, which may even be stored before a partner's link is fetched.
                f"SELECT report_id, id FROM report_photos WHERE report_id IN "
                f"({', '.join([mark] * len(with_photos))}) AND stage = {mark} ORDER BY report_id, position, id",
                [*with_photos, "before"],
            )
            for rid, pid in cur.fetchall():
                photos.setdefault(rid, []).append(pid)
        ids = [r[0] for r in rows]
        cur.execute(
            f'SELECT report_id, id, "at", kind, status, "text" FROM report_updates WHERE report_id IN '
            f"({', '.join([mark] * len(ids))}) AND public = {mark} AND kind IN "
            f'({", ".join([mark] * len(NOTE_KINDS))}) ORDER BY report_id, "at", id',
            [*ids, True, *NOTE_KINDS],
        )
        for e in cur.fetchall():
            entries.setdefault(e[0], []).append(e)
    finally:
        cur.close()
    return rows, photos, entries


def _read(db, q: S.ReportQuery, units: dict, extensions: bool, size: int):
    """`_fetch` on a pooled DBAPI connection; read-only, so a connection the database dropped (a restart) is
    thrown away and the read tried once more on a fresh one."""
    sqlite = db.engine.dialect.name == "sqlite"
    for attempt in (1, 2):
        conn = db.engine.raw_connection()
        try:
            return _fetch(conn.driver_connection, db, sqlite, q, units, extensions, size)
        except db.engine.dialect.loaded_dbapi.OperationalError:
            conn.invalidate()
            if attempt == 2:
                raise
        finally:
            conn.close()
    raise AssertionError("unreachable")


def report_query(params, tz, now: datetime | None = None) -> tuple[S.ReportQuery, bool]:
    """The service's query for GET requests' parameters, and whether extensions were asked for.

    service_request_id overrides every other filter (spec). Without any date filter the window is the
    last 90 days of requested_datetime; start_date..end_date may span 90 days at most."""
    extensions = _truthy(params.get("extensions"))
    size = integer(params.get("page_size"), "page_size", default=MAX_REQUESTS, lo=1, hi=MAX_REQUESTS)
    page = integer(params.get("page"), "page", default=1, lo=1, hi=1_000_000)
    ids = _csv_param(params.get("service_request_id"))
    if ids:
        if not all(i.isdigit() for i in ids) or len(ids) > MAX_REQUESTS:
            raise InvalidInput(
                "service_request_id is a comma-separated list of request ids",
                code="invalid_parameter",
                details=[{"field": "service_request_id", "problem": "numbers, comma-separated"}],
            )
        return S.ReportQuery(ids=[int(i) for i in ids], page=page, page_size=size), extensions
    q = S.ReportQuery(page=page, page_size=size)
    codes = _csv_param(params.get("service_code"))
    if codes:
        q.category = codes
    statuses = _csv_param(params.get("status"))
    if statuses:
        wanted: set[str] = set()
        for st in statuses:
            st = st.lower()
            if st == "open":
                wanted |= S.OPEN_STATUSES
            elif st == "closed":
                wanted |= S.CLOSED_STATUSES
            elif st in S.STATUSES:  # extension: our detailed statuses
                wanted.add(st)
            else:
                raise InvalidInput(
                    f"unknown status {st!r}: use open or closed",
                    code="invalid_status",
                    details=[{"field": "status", "problem": "use open or closed"}],
                )
        q.status = sorted(wanted)
    start, end = _w3c(params.get("start_date"), "start_date", tz), _w3c(params.get("end_date"), "end_date", tz)
    q.updated_after = _w3c(params.get("updated_after"), "updated_after", tz)
    q.updated_before = _w3c(params.get("updated_before"), "updated_before", tz)
    window = timedelta(days=DEFAULT_DAYS)
    if start and end:
        if end < start:
            raise InvalidInput("end_date is before start_date", code="invalid_date")
        if end - start > window:
            raise InvalidInput(
                f"start_date and end_date may not span more than {DEFAULT_DAYS} days",
                code="invalid_date",
                details=[{"field": "end_date", "problem": "span over 90 days"}],
            )
    elif start:
        end = start + window
    elif end:
        start = end - window
    elif not (q.updated_after or q.updated_before):
        start = (now or utcnow()) - window
    q.created_after, q.created_before = _from(start), _through(end)
    q.updated_after, q.updated_before = _from(q.updated_after), _through(q.updated_before)
    lat, lon = number(params.get("lat"), "lat", lo=-90, hi=90), number(params.get("long"), "long", lo=-180, hi=180)
    radius = number(params.get("radius"), "radius", lo=1, hi=MAX_RADIUS_M)
    if (lat is None) != (lon is None):
        raise InvalidInput(
            "lat and long go together",
            code="invalid_parameter",
            details=[{"field": "lat/long", "problem": "give both or neither"}],
        )
    if lat is not None:
        q.near = (lat, lon, radius or DEFAULT_RADIUS_M)
    elif radius is not None:
        raise InvalidInput("radius needs lat and long", code="invalid_parameter")
    if params.get("bbox"):
        q.bbox = S.parse_bbox(params["bbox"])
    if params.get("agency_responsible"):
        q.unit = params["agency_responsible"].strip()
    return q, extensions


def _json_list(value) -> list:
    """A JSON list column as read on the DBAPI connection (SQLite: text; PostgreSQL: already decoded)."""
    if value is None:
        return []
    return (orjson.loads(value) or []) if isinstance(value, (str, bytes)) else list(value)


def _description(title: str, description: str) -> str:
    if not description or description.startswith(title):
        return description or title
    return f"{title}\n\n{description}"


_in_language: dict[str, tuple[dict, dict, dict]] = {}


def _names_in(db, lang: str) -> tuple[dict, dict]:
    """({category code: name}, {unit id: (code, name)}) in `lang` (else any language the name is kept in),
    made once per language from each fresh `names()` map."""
    cats, units = names(db)
    made = _in_language.get(lang)
    if made is None or made[0] is not cats:
        named = {code: localized({"name_ko": ko, "name_en": en}, "name", lang) for code, (ko, en) in cats.items()}
        unit_named = {
            i: (code, localized({"name_ko": ko, "name_en": en}, "name", lang)) for i, (code, ko, en) in units.items()
        }
        made = _in_language[lang] = (cats, named, unit_named)
    return made[1], made[2]


def find_requests(db, q: S.ReportQuery, base: str, lang: str, extensions: bool, tz) -> list[dict]:
    """GET requests: the page's ids from an index, then only the needed columns of just those rows, their
    first photos and their status notes (one query each, never one per row); names from memory."""
    cats, units = _names_in(db, lang)
    size = min(max(q.page_size, 1), MAX_REQUESTS)
    rows, photos, entries = _read(db, q, units, extensions, size)
    when = local_time(tz)
    out = []
    open_statuses = S.OPEN_STATUSES
    no_unit = ("", "")
    for r in rows:
        rid, status, code = r[0], r[1], r[2]
        unit = units.get(r[5], no_unit)
        service_name = cats.get(code, code)
        notes = entries.get(rid, ())
        pids = photos.get(rid, ())
        links = _json_list(r[13])  # a partner's media_url links, shown as given
        item = {
            "service_request_id": str(rid),
            "status": "open" if status in open_statuses else "closed",
            "status_notes": next((e[5] for e in reversed(notes) if e[5]), None) if notes else None,
            "service_name": service_name,
            "service_code": code,
            "description": _description(r[3], r[4]),
            "agency_responsible": unit[1],
            "service_notice": None,
            "requested_datetime": when(r[9]),
            "updated_datetime": when(r[10]),
            "expected_datetime": when(r[11]),
            "address": r[6],
            "address_id": None,
            "zipcode": None,
            "lat": r[7],
            "long": r[8],
            "media_url": f"{base}/api/reports/photos/{pids[0]}.jpg" if pids else links[0] if links else None,
        }
        if extensions:
            parent, support, district, attributes = r[14:18]
            if isinstance(attributes, (str, bytes)):  # SQLite keeps JSON as text
                attributes = orjson.loads(attributes)
            item.update(
                {
                    "detailed_status": MYSOCIETY_STATUS.get(status, status.upper()),
                    "detailed_status_name": S.status_name(status, lang),
                    "agency_code": unit[0],
                    "district": district,
                    "duplicate_of": str(parent) if parent else None,
                    "support_count": support,
                    "media_urls": [f"{base}/api/reports/photos/{p}.jpg" for p in pids] + links,
                    "attributes": [
                        {"code": k, "value": ",".join(v) if isinstance(v, list) else v}
                        for k, v in (attributes or {}).items()
                    ],
                    "notes": [
                        {
                            "update_id": str(e[1]),
                            "datetime": when(e[2]),
                            "type": e[3],
                            "status": MYSOCIETY_STATUS.get(e[4], e[4].upper()),
                            "description": e[5],
                        }
                        for e in notes
                    ],
                }
            )
        out.append(item)
    return out


def get_requests(request: Request) -> Response:
    """GET requests.{fmt}: a bare Starlette route (sync, so in the thread pool) put first in the app's routes
    by `on_install`: no walk through the included routers, no dependency solving on the hot path; errors
    still reach the platform's handlers, which answer in Open311's format."""
    fmt = _format(request.path_params["fmt"])
    params = request.query_params
    check_jurisdiction(request)
    tz = _tz(request)
    q, extensions = report_query(params, tz)
    items = find_requests(_db(request), q, _base_url(request), language(request), extensions, tz)
    return respond(fmt, "service_requests", items)


class _RequestsRoute(Route):
    """The bare GET route; a method it does not serve gets a 405 naming POST too (the FastAPI route's)."""

    async def handle(self, scope, receive, send) -> None:
        if scope["method"] not in self.methods:
            raise StarletteHTTPException(405, headers={"Allow": "GET, HEAD, POST"})
        await self.app(scope, receive, send)

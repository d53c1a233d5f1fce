"""Downloads of a resource: its current rows as CSV or GeoJSON (streamed from its table) or Parquet (typed as
the table, opendata/rows.py), or any version's file as it was published:
GET /opendata/resources/{uid}/download[?format=csv|geojson|parquet][&version=N]."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, StreamingResponse
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from smartcity.core.errors import InvalidInput, NotFound
from smartcity.core.i18n import N_
from smartcity.opendata import datastore, publishing
from smartcity.opendata.models import Version

router = APIRouter(tags=["opendata"])
CHUNK = 2000
LATITUDES = ("lat", "latitude", "위도", "위도(lat)", "y좌표", "y")
LONGITUDES = ("lon", "lng", "longitude", "경도", "경도(lng)", "x좌표", "x")


def point_columns(columns: list[dict]) -> tuple[str, str] | None:
    """The resource's latitude and longitude columns (numbers named so), if it has both."""
    numeric = {c["id"].lower(): c["id"] for c in columns if c["type"] in ("float", "integer")}
    lat = next((numeric[n] for n in LATITUDES if n in numeric), None)
    lon = next((numeric[n] for n in LONGITUDES if n in numeric), None)
    return (lat, lon) if lat and lon else None


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime | date) else value


def rows(db, uid: str) -> Iterator[tuple[list[str], list[list[Any]]]]:
    """The resource's current rows in file order, a chunk at a time (column ids with each chunk)."""
    with db.session() as s:
        r = datastore.readable(s, uid)
        names = [c["id"] for c in r.resource.columns]
        table = r.table
        result = s.execute(select(*(table.c[n] for n in names)).order_by(table.c["_id"]))
        while chunk := result.fetchmany(CHUNK):
            yield names, [[_plain(v) for v in row] for row in chunk]


def csv_chunks(db, uid: str) -> Iterator[bytes]:
    header_done = False
    for names, chunk in rows(db, uid):
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        if not header_done:
            out.write("\ufeff")  # a byte order mark: spreadsheet programs then read Korean as UTF-8
            writer.writerow(names)
            header_done = True
        writer.writerows([["" if v is None else v for v in row] for row in chunk])
        yield out.getvalue().encode()


def geojson_chunks(db, uid: str, lat: str, lon: str) -> Iterator[bytes]:
    yield b'{"type":"FeatureCollection","features":['
    first = True
    for names, chunk in rows(db, uid):
        i, j = names.index(lat), names.index(lon)
        parts = []
        for row in chunk:
            if row[i] is None or row[j] is None:
                continue
            feature = {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [row[j], row[i]]},
                "properties": dict(zip(names, row, strict=True)),
            }
            parts.append(("" if first else ",") + json.dumps(feature, ensure_ascii=False, separators=(",", ":")))
            first = False
        yield "".join(parts).encode()
    yield b"]}"


@router.get("/opendata/resources/{uid}/download")
async def download(request: Request, uid: str, format: str = "csv", version: int | None = None):
    """A resource's rows (CSV, GeoJSON or Parquet) or one version's file as published."""
    db = request.app.state.db

    def check() -> tuple[Any, Any]:
        with db.session() as s:
            r = datastore.readable(s, uid)
            found = None
            if version is not None:
                found = s.scalar(select(Version).where(Version.resource_id == r.resource.id, Version.number == version))
                if found is None:
                    raise NotFound(N_("version {number} has no stored file"), params={"number": version})
                return r, publishing.version_file(s, found)
            return r, None

    r, path = await run_in_threadpool(check)
    name = r.resource.name
    if path is not None:
        if not path.exists():
            raise NotFound(N_("version {number} has no stored file"), params={"number": version})
        return FileResponse(path, filename=path.name.split("-", 1)[-1])
    if format == "csv":
        headers = {"content-disposition": f"attachment; filename*=UTF-8''{_quote(name)}.csv"}
        return StreamingResponse(csv_chunks(db, uid), media_type="text/csv; charset=utf-8", headers=headers)
    if format == "geojson":
        points = point_columns(r.resource.columns)
        if points is None:
            raise InvalidInput(N_("this resource has no latitude and longitude columns"), code="no_points")
        headers = {"content-disposition": f"attachment; filename*=UTF-8''{_quote(name)}.geojson"}
        return StreamingResponse(geojson_chunks(db, uid, *points), media_type="application/geo+json", headers=headers)
    if format == "parquet":
        from smartcity.opendata.rows import parquet_response

        return await run_in_threadpool(parquet_response, db, uid, name)
    raise InvalidInput(N_("a resource is downloaded as csv, geojson or parquet"), code="format")


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")

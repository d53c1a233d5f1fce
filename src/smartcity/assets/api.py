"""JSON routes of the asset registry. Reading is public (Seoul publishes camera, Wi-Fi and sensor
positions as open data); changing needs `assets.manage`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from smartcity.assets import service
from smartcity.core.auth import Identity, Require
from smartcity.core.render import render
from smartcity.core.web import GEOJSON_RESPONSES

router = APIRouter(prefix="/api/assets", tags=["assets"])
Manager = Annotated[Identity, Depends(Require("assets.manage"))]


class Where:
    """Which assets: of one kind, inside a box, in a district (each optional)."""

    def __init__(
        self,
        kind: str | None = None,
        bbox: Annotated[str | None, Query(description="west,south,east,north")] = None,
        district: str | None = None,
    ):
        self.kind, self.bbox, self.district = kind, service.parse_bbox(bbox), district


@router.get("")
def list_assets(
    request: Request,
    where: Annotated[Where, Depends()],
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict:
    """Assets, optionally of one kind, inside a box or a district."""
    with request.app.state.db.session() as s:
        rows = service.list_assets(s, where.kind, where.bbox, where.district, limit, offset)
        return {"assets": [service.to_dict(a) for a in rows], "count": len(rows), "offset": offset}


@router.get(".geojson", response_class=Response, responses=GEOJSON_RESPONSES)
def assets_geojson(
    request: Request, where: Annotated[Where, Depends()], limit: Annotated[int, Query(ge=1, le=50_000)] = 10_000
) -> Response:
    """The same as a GeoJSON FeatureCollection of points (for maps)."""
    with request.app.state.db.session() as s:
        rows = service.list_assets(s, where.kind, where.bbox, where.district, limit)
        return render(request, service.as_points(rows), "geojson")


@router.get("/kinds")
def kinds() -> dict:
    return {"kinds": [{"kind": k, "description": v} for k, v in service.KINDS.items()]}


@router.get("/nearest")
def nearest(
    request: Request,
    lat: float,
    lon: float,
    kind: str = "cctv",
    k: Annotated[int, Query(ge=1, le=service.MAX_NEAREST)] = 5,
) -> dict:
    """The `k` assets of a kind nearest a point, nearest first, with distances in metres."""
    found = service.nearest(request.app.state.db, kind, lat, lon, k)
    return {
        "kind": kind,
        "lat": lat,
        "lon": lon,
        "nearest": [ref.to_dict() | {"distance_m": round(d, 1)} for ref, d in found],
    }


@router.get("/{asset_id}")
def get_asset(request: Request, asset_id: int) -> dict:
    with request.app.state.db.session() as s:
        return service.to_dict(service.get_asset(s, asset_id))


class AssetIn(BaseModel):
    kind: str
    lat: float
    lon: float
    name: str = Field(default="", max_length=300)
    attributes: dict[str, Any] = Field(default_factory=dict)
    source: str = Field(default="manual", min_length=1, max_length=200)
    external_id: str | None = Field(default=None, max_length=200)


@router.post("", status_code=201)
def create_asset(request: Request, body: AssetIn, identity: Manager) -> dict:
    """Register one asset (administrators)."""
    with request.app.state.db.session() as s:
        asset = service.create_asset(
            s,
            body.kind,
            body.lat,
            body.lon,
            name=body.name,
            attributes=body.attributes,
            source=body.source,
            external_id=body.external_id,
            actor=identity,
        )
        return service.to_dict(asset)


@router.delete("/{asset_id}", status_code=204)
def delete_asset(request: Request, asset_id: int, identity: Manager) -> Response:
    with request.app.state.db.session() as s:
        service.delete_asset(s, asset_id, actor=identity)
    return Response(status_code=204)
